"""Plain records the booking domain hands out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class BookingStatus(Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PENDING_CONFIRMATION = "PENDING_CONFIRMATION"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"


ACTIVE = frozenset(
    {BookingStatus.PENDING_PAYMENT, BookingStatus.PENDING_CONFIRMATION, BookingStatus.CONFIRMED}
)


class Actor(Enum):
    """Who makes a change, as `BookingChange.actor` spells it."""

    CUSTOMER = "customer"
    GUEST = "guest"
    STAFF = "staff"
    ADMIN = "admin"
    SYSTEM = "system"
    PAYMENT = "payment"


@dataclass(frozen=True, slots=True)
class Booking:
    id: uuid.UUID
    reference: str
    organization_id: uuid.UUID
    service_id: uuid.UUID
    staff_id: uuid.UUID
    customer_id: uuid.UUID | None
    guest_name: str | None
    guest_email: str | None
    guest_phone: str | None
    start: datetime
    end: datetime
    status: BookingStatus
    notes: str | None
    price_amount: int
    currency: str
    expires_at: datetime | None
    created_at: datetime
    cancelled_at: datetime | None
    cancellation_reason: str | None


@dataclass(frozen=True, slots=True)
class BookingChange:
    at: datetime
    status: BookingStatus
    start: datetime
    end: datetime
    actor: Actor
    reason: str | None
    staff_id: uuid.UUID | None = None  # after the change; None: unchanged (or not recorded)


@dataclass(frozen=True, slots=True)
class Hold:
    id: uuid.UUID
    service_id: uuid.UUID
    staff_id: uuid.UUID
    user_id: uuid.UUID | None
    start: datetime
    end: datetime
    expires_at: datetime
    booking_id: uuid.UUID | None
