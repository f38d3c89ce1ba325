"""What the payments domain needs from a payment provider, whatever it is: Stripe
(stripe_provider.py) or the offline stand-in of the embedded default (offline.py).

Every call that changes something carries an idempotency key derived from our own ids,
so asking twice (a retry, a replayed request, a reconciliation after a crash) never
makes a second intent, a second cancellation or a second refund.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.payments.records import PaymentStatus


class ProviderUnavailable(Exception):
    """The provider did not answer in time, failed on its side, or its circuit is open:
    nothing is known to have happened (an idempotent retry may)."""


class ProviderRefused(Exception):
    """The provider answered and said no (an intent that cannot be cancelled any more,
    a refund of more than is left): asking again will not help."""


class EventRefused(Exception):
    """A webhook delivery whose signature, age or body is not acceptable."""


@dataclass(frozen=True, slots=True)
class Intent:
    """The provider's side of one payment, as of `at`."""

    id: str
    status: PaymentStatus
    client_secret: str | None
    amount: int
    currency: str
    error: str | None  # why the last attempt failed, for people
    at: datetime


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A verified webhook event: its intent's state, or (charge.refunded) the amount
    refunded so far."""

    id: str
    type: str
    created: datetime
    intent_id: str | None
    intent: Intent | None
    amount_refunded: int | None


class PaymentProvider(Protocol):
    name: str

    async def create_intent(
        self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> Intent: ...

    async def retrieve_intent(self, intent_id: str) -> Intent: ...

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> Intent: ...

    async def refund(
        self, intent_id: str, amount: int, *, idempotency_key: str, metadata: dict[str, str]
    ) -> str:
        """The refund's id at the provider."""
        ...

    async def pay_in_test_mode(self, intent_id: str) -> bool:
        """Completes the payment as a customer would, where the provider can (offline
        only): False elsewhere, where only the customer's browser can pay."""
        ...

    def verify_event(self, payload: bytes, signature: str | None) -> ProviderEvent: ...

    async def close(self) -> None: ...
