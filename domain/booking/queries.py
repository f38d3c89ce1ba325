"""Reads: one booking, the service and organization a request names, pages of
bookings. Only `readable_booking` checks the viewer; the rest trust their caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.availability.records import Service
from domain.booking.access import roles_of
from domain.booking.records import Actor, Booking, BookingStatus
from domain.booking.rows import booking_from_row
from domain.booking.tables import bookings
from domain.errors import DomainError, ErrorCode
from domain.users import service as users
from domain.users.records import Organization


async def service_and_org(
    conn: AsyncConnection, service_id: uuid.UUID | None, field: str
) -> tuple[Service, Organization]:
    service = await availability.service_by_id(conn, service_id) if service_id else None
    if service is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such service.", field)
    org = await users.organization_by_id(conn, service.organization_id)
    assert org is not None
    return service, org


async def load_booking(
    conn: AsyncConnection, booking_id: uuid.UUID, *, for_update: bool = False
) -> Booking | None:
    query = select(bookings).where(bookings.c.id == booking_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return booking_from_row(row) if row else None


async def readable_booking(
    conn: AsyncConnection,
    booking_id: uuid.UUID,
    viewer: uuid.UUID | None,
    manage_token: str | None,
) -> Booking | None:
    """The booking when the viewer may read it, else None (as if it did not exist)."""
    found = await booking_and_roles(conn, booking_id, viewer, manage_token)
    return found[0] if found else None


async def booking_and_roles(
    conn: AsyncConnection,
    booking_id: uuid.UUID,
    viewer: uuid.UUID | None,
    manage_token: str | None,
) -> tuple[Booking, frozenset[Actor]] | None:
    """The booking and what the viewer is to it, when that is anything."""
    row = (
        (await conn.execute(select(bookings).where(bookings.c.id == booking_id))).mappings().first()
    )
    if row is None:
        return None
    booking = booking_from_row(row)
    roles = await roles_of(conn, booking, viewer, manage_token, row["manage_token_hash"])
    return (booking, roles) if roles else None


@dataclass(frozen=True, slots=True)
class Page:
    bookings: list[Booking]
    has_next: bool


async def bookings_page(
    conn: AsyncConnection,
    *,
    first: int,
    after: tuple[datetime, uuid.UUID] | None,
    customer_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
    staff_ids: Sequence[uuid.UUID] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: Sequence[BookingStatus] | None = None,
) -> Page:
    """Bookings by start time (then id), keyset-paginated after (start, id)."""
    query = select(bookings)
    if customer_id is not None:
        query = query.where(bookings.c.customer_id == customer_id)
    if organization_id is not None:
        query = query.where(bookings.c.organization_id == organization_id)
    if staff_ids is not None:
        query = query.where(bookings.c.staff_id.in_(list(staff_ids)))
    if start is not None:
        query = query.where(bookings.c.end_at > start)
    if end is not None:
        query = query.where(bookings.c.start_at < end)
    if statuses:
        query = query.where(bookings.c.status.in_([s.value for s in statuses]))
    if after is not None:
        query = query.where(tuple_(bookings.c.start_at, bookings.c.id) > tuple_(*after))
    rows = (
        (await conn.execute(query.order_by(bookings.c.start_at, bookings.c.id).limit(first + 1)))
        .mappings()
        .all()
    )
    found = [booking_from_row(r) for r in rows]
    return Page(found[:first], len(found) > first)
