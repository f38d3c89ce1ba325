"""Stripe, through the official library's `StripeClient`: PaymentIntents with automatic
payment methods, refunds, and webhook signatures (the library's own check, with Stripe's
300 s tolerance).

Every call is bounded (`within`), goes through one circuit breaker (its state in the
logs and /readyz), and is retried with backoff and jitter: all our calls may safely run
twice, because each change carries an idempotency key from our ids and reads change
nothing. The library's own retries are off, so ours are the only ones.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import stripe

from domain.payments.provider import (
    EventRefused,
    Intent,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
)
from domain.payments.records import PaymentStatus
from infra.resilience import Breaker, BreakerOpen, retrying, within

log = logging.getLogger(__name__)

NAME = "stripe"
TRIES = 3
TOLERANCE_SECONDS = 300  # a webhook older than this is refused, as Stripe advises

T = TypeVar("T")

# Errors that say nothing happened on Stripe's side, or that it may have: a retry with
# the same idempotency key is safe and may succeed.
_UNAVAILABLE = (
    stripe.APIError,
    stripe.APIConnectionError,
    stripe.RateLimitError,
    TimeoutError,
)

STATUSES = {
    "requires_payment_method": PaymentStatus.REQUIRES_PAYMENT,
    "requires_confirmation": PaymentStatus.REQUIRES_PAYMENT,
    "requires_action": PaymentStatus.REQUIRES_PAYMENT,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.PROCESSING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}


def intent_of(data: dict[str, Any], at: datetime) -> Intent:
    """Our view of a PaymentIntent object (from the API or inside an event)."""
    error = data.get("last_payment_error") or None
    status = STATUSES.get(str(data.get("status")), PaymentStatus.REQUIRES_PAYMENT)
    if status is PaymentStatus.REQUIRES_PAYMENT and error:
        status = PaymentStatus.FAILED  # the last attempt failed; the customer may retry
    return Intent(
        id=str(data["id"]),
        status=status,
        client_secret=data.get("client_secret"),
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or "").upper(),
        error=str(error.get("message") or "The payment failed.") if error else None,
        at=at,
    )


class FormHTTPXClient(stripe.HTTPXClient):
    """stripe.HTTPXClient sending the form body as httpx's `content=`: stripe 16.1 passes
    it as `data=<str>`, which httpx 0.28 deprecates with a warning on every POST (an
    error under the tests' filterwarnings)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        return [args, kwargs]

    async def close_async(self) -> None:
        await super().close_async()  # type: ignore[no-untyped-call]  # stripe leaves it bare


class StripeProvider:
    name = NAME

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str | None,
        api_base: str | None = None,
        call_seconds: float = 5.0,
        breaker: Breaker | None = None,
    ) -> None:
        self.call_seconds = call_seconds  # one call, the network included
        # No telemetry: it writes a file under $HOME from the event loop on first use.
        stripe.enable_telemetry = False
        self._http = FormHTTPXClient(timeout=call_seconds)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=0,
        )
        self._webhook_secret = webhook_secret
        self.breaker = breaker or Breaker(
            "Stripe", fail_max=5, reset_timeout=30.0, failures=_UNAVAILABLE
        )

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in retrying(on=_UNAVAILABLE, attempts=TRIES, name=f"Stripe {what}"):
                with attempt:
                    async with self.breaker, within(self.call_seconds):
                        return await call()
        except (*_UNAVAILABLE, BreakerOpen, stripe.AuthenticationError) as error:
            raise ProviderUnavailable(f"Stripe {what}: {type(error).__name__}") from error
        except stripe.StripeError as error:
            raise ProviderRefused(f"Stripe {what}: {error.user_message or error}") from error
        raise AssertionError("unreachable")  # retrying raises or returns

    async def create_intent(
        self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> Intent:
        intent = await self._call(
            "create payment intent",
            lambda: self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "automatic_payment_methods": {"enabled": True},
                    "metadata": metadata,
                },
                options={"idempotency_key": idempotency_key},
            ),
        )
        return intent_of(intent.to_dict(), datetime.now(UTC))

    async def retrieve_intent(self, intent_id: str) -> Intent:
        intent = await self._call(
            "retrieve payment intent",
            lambda: self._client.v1.payment_intents.retrieve_async(intent_id),
        )
        return intent_of(intent.to_dict(), datetime.now(UTC))

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> Intent:
        intent = await self._call(
            "cancel payment intent",
            lambda: self._client.v1.payment_intents.cancel_async(
                intent_id,
                params={"cancellation_reason": "abandoned"},
                options={"idempotency_key": idempotency_key},
            ),
        )
        return intent_of(intent.to_dict(), datetime.now(UTC))

    async def refund(
        self, intent_id: str, amount: int, *, idempotency_key: str, metadata: dict[str, str]
    ) -> str:
        refund = await self._call(
            "refund",
            lambda: self._client.v1.refunds.create_async(
                params={"payment_intent": intent_id, "amount": amount, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            ),
        )
        return str(refund.id)

    async def pay_in_test_mode(self, intent_id: str) -> bool:
        return False  # only the customer's browser pays, through Stripe.js

    def verify_event(self, payload: bytes, signature: str | None) -> ProviderEvent:
        if not self._webhook_secret:
            raise EventRefused("STRIPE_WEBHOOK_SECRET is not set")
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode(), signature or "", self._webhook_secret, TOLERANCE_SECONDS
            )
            event = orjson.loads(payload)
            created = datetime.fromtimestamp(int(event["created"]), UTC)
            data = event["data"]["object"]
            kind = str(event["type"])
        except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError) as error:
            raise EventRefused(str(error) or type(error).__name__) from error
        intent = intent_of(data, created) if data.get("object") == "payment_intent" else None
        refunded = int(data.get("amount_refunded") or 0) if data.get("object") == "charge" else None
        intent_id = intent.id if intent else data.get("payment_intent")
        return ProviderEvent(
            id=str(event["id"]),
            type=kind,
            created=created,
            intent_id=str(intent_id) if intent_id else None,
            intent=intent,
            amount_refunded=refunded,
        )

    async def close(self) -> None:
        await self._http.close_async()
