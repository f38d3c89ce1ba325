"""The `availability` query: offered slots of one service in a window."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError

from domain.availability import engine
from domain.availability import service as availability
from domain.availability.wallclock import from_epoch
from domain.booking import service as booking
from domain.errors import DomainError
from domain.validation import is_time_zone
from ids import key_of
from schema.availability import Availability, AvailabilityDay, Slot
from schema.catalog import Service, Staff
from schema.context import Info, invalid_argument


async def resolve_availability(
    info: Info,
    service_id: strawberry.ID,
    start: datetime,
    end: datetime,
    staff_id: strawberry.ID | None = None,
    time_zone: str | None = None,
) -> Availability:
    try:
        availability.check_window(start, end)
    except DomainError as error:
        raise invalid_argument(error.message, error.field) from None
    if time_zone is not None and not is_time_zone(time_zone):
        raise invalid_argument("Use an IANA time zone name, like 'Europe/Berlin'.", "timeZone")
    key = key_of(service_id, "Service")
    loaders = info.context.loaders
    found = await loaders.services.load(key) if key else None
    if found is None:
        raise GraphQLError("No such service.", extensions={"code": "NOT_FOUND"})
    staff_key = None
    if staff_id is not None:
        staff_key = key_of(staff_id, "Staff")
        if staff_key is None:
            raise GraphQLError("No such staff member.", extensions={"code": "NOT_FOUND"})
    org = await loaders.organizations.load(found.organization_id)
    assert org is not None
    async with info.context.read() as conn:
        offer = await availability.availability(
            conn,
            found,
            start,
            end,
            staff_key,
            info.context.now,
            booking.claims_loader(info.context.now),
        )
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
    zone = time_zone or org.time_zone
    days = [
        AvailabilityDay(date=day, slots=[by_start[s.start] for s in day_slots])
        for day, day_slots in engine.group_by_day(offer.slots, zone, start, end)
    ]
    return Availability(service=Service.of(found), time_zone=zone, slots=slots, days=days)
