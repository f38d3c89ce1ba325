"""Plain records the payments domain hands out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class PaymentStatus(Enum):
    REQUIRES_PAYMENT = "REQUIRES_PAYMENT"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"


# The customer may still pay: the provider's intent is open.
OPEN = frozenset({PaymentStatus.REQUIRES_PAYMENT, PaymentStatus.FAILED, PaymentStatus.PROCESSING})
# The money arrived (some of it may have gone back since).
PAID = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)


@dataclass(frozen=True, slots=True)
class Payment:
    id: uuid.UUID
    booking_id: uuid.UUID
    organization_id: uuid.UUID
    provider: str
    intent_id: str | None
    client_secret: str | None
    status: PaymentStatus
    amount: int  # minor units
    refunded_amount: int
    currency: str
    last_error: str | None
    state_at: datetime | None
    created_at: datetime
    updated_at: datetime | None = None  # its last change of any kind (a refund, say)


@dataclass(frozen=True, slots=True)
class Refund:
    id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    reason: str
    status: str
    provider_ref: str | None
