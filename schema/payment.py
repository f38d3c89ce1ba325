"""A booking's payment."""

from __future__ import annotations

import strawberry

from domain.payments import records as pay
from infra.ids import to_global_id
from schema.common import Money, Node

PaymentStatus = strawberry.enum(pay.PaymentStatus, name="PaymentStatus")


@strawberry.type(name="Payment")
class Payment(Node):
    record: strawberry.Private[pay.Payment]
    payer: strawberry.Private[bool]
    status: PaymentStatus  # type: ignore[valid-type]
    provider: str = strawberry.field(
        description='"stripe", or "offline": the stand-in of the embedded default.'
    )

    @classmethod
    def of(cls, record: pay.Payment, *, payer: bool) -> Payment:
        return cls(
            id=strawberry.ID(to_global_id("Payment", record.id)),
            record=record,
            payer=payer,
            status=record.status,
            provider=record.provider,
        )

    @strawberry.field
    def amount(self) -> Money:
        return Money(amount=self.record.amount, currency=self.record.currency)

    @strawberry.field
    def refunded_amount(self) -> Money:
        return Money(amount=self.record.refunded_amount, currency=self.record.currency)

    @strawberry.field(
        description="For Stripe.js: only to the paying customer, only while REQUIRES_PAYMENT"
        " (or after a failed attempt, to try again)."
    )  # type: ignore[untyped-decorator]
    def client_secret(self) -> str | None:
        if not self.payer or self.record.status not in pay.OPEN - {pay.PaymentStatus.PROCESSING}:
            return None
        return self.record.client_secret

    @strawberry.field(description="Why the last attempt failed, for the payer.")  # type: ignore[untyped-decorator]
    def failure_message(self) -> str | None:
        return self.record.last_error if self.payer else None
