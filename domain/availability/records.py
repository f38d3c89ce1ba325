"""Plain records the availability domain hands out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time


@dataclass(frozen=True, slots=True)
class Service:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    description: str | None
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_interval_minutes: int
    min_notice_minutes: int
    max_advance_days: int
    capacity: int
    price_amount: int
    requires_confirmation: bool


@dataclass(frozen=True, slots=True)
class Staff:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    time_zone: str
    user_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class WorkingHours:
    weekday: int  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class DateOverride:
    date: date
    intervals: tuple[tuple[time, time], ...]


@dataclass(frozen=True, slots=True)
class TimeOff:
    id: uuid.UUID
    organization_id: uuid.UUID
    staff_id: uuid.UUID | None
    start: datetime
    end: datetime
    reason: str | None
