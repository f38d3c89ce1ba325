"""Inputs and payloads of the catalog mutations."""

from __future__ import annotations

from datetime import date, datetime, time

import strawberry

from schema.catalog import Organization, Service, Staff, TimeOff
from schema.common import UserError, Weekday


@strawberry.input
class CreateOrganizationInput:
    name: str
    slug: str
    time_zone: str
    currency: str


@strawberry.input
class CreateServiceInput:
    organization_id: strawberry.ID
    name: str
    description: str | None = None
    duration_minutes: int
    buffer_before_minutes: int | None = 0
    buffer_after_minutes: int | None = 0
    slot_interval_minutes: int | None = strawberry.field(
        default=None, description="Defaults to durationMinutes."
    )
    min_notice_minutes: int | None = 0
    max_advance_days: int | None = 60
    capacity: int | None = 1
    price_amount: int | None = strawberry.field(
        default=0, description="Minor units in the organization's currency; 0 = free."
    )
    requires_confirmation: bool | None = False
    staff_ids: list[strawberry.ID] | None = strawberry.field(default_factory=list)


@strawberry.input
class AddStaffInput:
    organization_id: strawberry.ID
    name: str
    email: str | None = None
    time_zone: str | None = None
    service_ids: list[strawberry.ID] | None = strawberry.field(default_factory=list)


@strawberry.input
class WorkingHoursInput:
    weekday: Weekday
    start: time
    end: time


@strawberry.input
class SetWeeklyScheduleInput:
    staff_id: strawberry.ID
    hours: list[WorkingHoursInput]


@strawberry.input
class TimeIntervalInput:
    start: time
    end: time


@strawberry.input
class SetDateOverrideInput:
    staff_id: strawberry.ID
    date: date
    intervals: list[TimeIntervalInput]


@strawberry.input
class AddTimeOffInput:
    organization_id: strawberry.ID
    staff_id: strawberry.ID | None = None
    start: datetime
    end: datetime
    reason: str | None = None


@strawberry.type
class OrganizationPayload:
    organization: Organization | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ServicePayload:
    service: Service | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class StaffPayload:
    staff: Staff | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TimeOffPayload:
    time_off: TimeOff | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
