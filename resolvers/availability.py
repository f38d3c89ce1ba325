"""The `availability` query: offered slots of one service in a window."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import strawberry
from graphql import GraphQLError

from dataloaders import DataLoaders
from domain.availability import engine
from domain.availability import records as av
from domain.availability import service as availability
from domain.availability.wallclock import from_epoch
from domain.errors import DomainError
from domain.validation import is_time_zone
from infra.ids import key_of
from schema.availability import Availability, AvailabilityDay, Slot
from schema.catalog import Service, Staff
from schema.context import Info, invalid_argument


@dataclass(frozen=True, slots=True)
class WindowRequest:
    """A valid request for a window's availability."""

    service: av.Service
    start: datetime
    end: datetime
    staff_id: uuid.UUID | None
    time_zone: str  # the zone days are grouped in: the one asked for, or the business's


async def window_request(
    loaders: DataLoaders,
    service_id: strawberry.ID,
    start: datetime,
    end: datetime,
    staff_id: strawberry.ID | None,
    time_zone: str | None,
) -> WindowRequest:
    """Checks the arguments of `availability` and `availabilityChanged`."""
    try:
        availability.check_window(start, end)
    except DomainError as error:
        raise invalid_argument(error.message, error.field) from None
    if time_zone is not None and not is_time_zone(time_zone):
        raise invalid_argument("Use an IANA time zone name, like 'Europe/Berlin'.", "timeZone")
    key = key_of(service_id, "Service")
    found = await loaders.services.load(key) if key else None
    if found is None:
        raise GraphQLError("No such service.", extensions={"code": "NOT_FOUND"})
    staff_key = None
    if staff_id is not None:
        staff_key = key_of(staff_id, "Staff")
        if staff_key is None:
            raise GraphQLError("No such staff member.", extensions={"code": "NOT_FOUND"})
    zone = time_zone
    if zone is None:
        org = await loaders.organizations.load(found.organization_id)
        assert org is not None
        zone = org.time_zone
    return WindowRequest(found, start, end, staff_key, zone)


def availability_of(
    request: WindowRequest, offer: availability.Offer, loaders: DataLoaders
) -> Availability:
    """The schema's answer for a window's offer."""
    # One Staff object per person, shared by every slot that names them.
    people = {sid: Staff.of(record) for sid, record in offer.staff.items()}
    for record in offer.staff.values():
        loaders.staff.prime(record.id, record)
    slots = [
        Slot(
            start=from_epoch(s.start),
            end=from_epoch(s.end),
            staff=[people[i] for i in s.staff_ids],
            remaining_capacity=s.remaining_capacity,
        )
        for s in offer.slots
    ]
    by_start = {s.start: slot for s, slot in zip(offer.slots, slots, strict=True)}
    days = [
        AvailabilityDay(date=day, slots=[by_start[s.start] for s in day_slots])
        for day, day_slots in engine.group_by_day(
            offer.slots, request.time_zone, request.start, request.end
        )
    ]
    return Availability(
        service=Service.of(request.service), time_zone=request.time_zone, slots=slots, days=days
    )


async def resolve_availability(
    info: Info,
    service_id: strawberry.ID,
    start: datetime,
    end: datetime,
    staff_id: strawberry.ID | None = None,
    time_zone: str | None = None,
) -> Availability:
    request = await window_request(
        info.context.loaders, service_id, start, end, staff_id, time_zone
    )
    async with info.context.share.turn():
        window = await info.context.live.fresh_window(
            request.service, request.start, request.end, request.staff_id
        )
    assert window.offer is not None
    info.context.windows_read.append((window, window.version))
    return availability_of(request, window.offer, info.context.loaders)
