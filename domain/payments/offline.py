"""The offline provider of the embedded default (no STRIPE_SECRET_KEY): the same states
as Stripe with no network, so the whole flow can be tried in GraphiQL and on /demo.

Its intents live in this process's memory; PostgreSQL holds what we concluded from
them, so another process (or a restart) that does not know an intent reports it as
still waiting for the customer, which never moves a payment backwards.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime

from domain.payments.provider import EventRefused, Intent, ProviderEvent, ProviderRefused
from domain.payments.records import PaymentStatus

NAME = "offline"


class OfflineProvider:
    name = NAME

    def __init__(self) -> None:
        self._intents: dict[str, Intent] = {}
        self._by_key: dict[str, str] = {}
        self._refunded: dict[str, int] = {}

    async def create_intent(
        self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> Intent:
        known = self._by_key.get(idempotency_key)
        if known is not None:
            return self._intents[known]
        intent_id = f"offline_pi_{secrets.token_hex(12)}"
        intent = Intent(
            id=intent_id,
            status=PaymentStatus.REQUIRES_PAYMENT,
            client_secret=f"{intent_id}_secret_{secrets.token_urlsafe(18)}",
            amount=amount,
            currency=currency,
            error=None,
            at=datetime.now(UTC),
        )
        self._intents[intent_id] = intent
        self._by_key[idempotency_key] = intent_id
        return intent

    async def retrieve_intent(self, intent_id: str) -> Intent:
        found = self._intents.get(intent_id)
        if found is None:  # another process's, or before a restart: not paid here
            return Intent(
                intent_id, PaymentStatus.REQUIRES_PAYMENT, None, 0, "", None, datetime.now(UTC)
            )
        return found

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> Intent:
        intent = await self.retrieve_intent(intent_id)
        if intent.status is PaymentStatus.SUCCEEDED:
            raise ProviderRefused("the payment has already succeeded")
        return self._put(replace(intent, status=PaymentStatus.CANCELED, at=datetime.now(UTC)))

    async def refund(
        self, intent_id: str, amount: int, *, idempotency_key: str, metadata: dict[str, str]
    ) -> str:
        return f"offline_re_{idempotency_key}"

    async def pay_in_test_mode(self, intent_id: str) -> bool:
        intent = await self.retrieve_intent(intent_id)
        if intent.status is PaymentStatus.CANCELED:
            return True  # as Stripe: a canceled intent cannot be paid
        self._put(replace(intent, status=PaymentStatus.SUCCEEDED, at=datetime.now(UTC)))
        return True

    def verify_event(self, payload: bytes, signature: str | None) -> ProviderEvent:
        raise EventRefused("no webhooks without a Stripe webhook secret")

    async def close(self) -> None:
        return None

    def _put(self, intent: Intent) -> Intent:
        self._intents[intent.id] = intent
        return intent
