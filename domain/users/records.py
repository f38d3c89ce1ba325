"""Plain records the users domain hands to the rest of the system."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Role(Enum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    STAFF = "STAFF"


MANAGERS = frozenset({Role.OWNER, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str | None
    phone: str | None
    name: str
    email_verified: bool
    time_zone: str | None = None  # IANA; None: read times in the organization's zone
    verified_phone: str | None = None  # E.164, proved by a phone code: texts go there


@dataclass(frozen=True, slots=True)
class Organization:
    id: uuid.UUID
    name: str
    slug: str
    time_zone: str
    currency: str
    hold_minutes: int
    free_cancellation_hours: int = 24
    late_cancellation_refund_percent: int = 0
    reminder_minutes: tuple[int, ...] = (1440, 60)

    @property
    def settings(self) -> OrganizationSettings:
        return OrganizationSettings(
            hold_minutes=self.hold_minutes,
            free_cancellation_hours=self.free_cancellation_hours,
            late_cancellation_refund_percent=self.late_cancellation_refund_percent,
            reminder_minutes=self.reminder_minutes,
        )


@dataclass(frozen=True, slots=True)
class OrganizationSettings:
    """The organization's booking and refund policy (updateOrganizationSettings).

    hold_minutes: how long a hold or an unpaid booking keeps its slot; a paid booking
    cancelled by its customer at least free_cancellation_hours before its start is
    refunded in full, later late_cancellation_refund_percent of it. reminder_minutes: how
    long before a confirmed booking its customer is reminded."""

    hold_minutes: int
    free_cancellation_hours: int
    late_cancellation_refund_percent: int
    reminder_minutes: tuple[int, ...] = (1440, 60)  # longest first


@dataclass(frozen=True, slots=True)
class Membership:
    organization_id: uuid.UUID
    user_id: uuid.UUID
    role: Role


@dataclass(frozen=True, slots=True)
class Session:
    """What signing in hands back: a short JWT and a single-use refresh token."""

    user: User
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
