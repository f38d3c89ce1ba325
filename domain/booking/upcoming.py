"""Reads for reminders: confirmed bookings about to start, and the check a reminder's
send makes in its own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.booking.records import Booking, BookingStatus
from domain.booking.rows import booking_from_row
from domain.booking.tables import bookings

# Reminded of: a booking the business has confirmed (and, for a paid service, that is
# paid). A request still waiting for the business is not yet an appointment.
REMINDED = BookingStatus.CONFIRMED


async def confirmed_starting(
    conn: AsyncConnection, windows: Sequence[tuple[datetime, datetime]], limit: int = 10_000
) -> list[Booking]:
    """Confirmed bookings starting in any of the (after, until] windows, soonest first,
    at most `limit`."""
    if not windows:
        return []
    starts = [
        and_(bookings.c.start_at > after, bookings.c.start_at <= until) for after, until in windows
    ]
    rows = await conn.execute(
        select(bookings)
        .where(bookings.c.status == REMINDED.value, or_(*starts))
        .order_by(bookings.c.start_at, bookings.c.id)
        .limit(limit)
    )
    return [booking_from_row(row) for row in rows.mappings()]


async def still_confirmed_at(conn: AsyncConnection, booking_id: uuid.UUID, start: datetime) -> bool:
    """Whether the booking is still confirmed at `start`, keeping it so (FOR SHARE) until
    the caller's transaction ends: a cancellation or a reschedule waits for it, so a
    reminder sent under this lock was true when it left."""
    found = await conn.scalar(
        select(bookings.c.id)
        .where(
            bookings.c.id == booking_id,
            bookings.c.status == REMINDED.value,
            bookings.c.start_at == start,
        )
        .with_for_update(read=True)
    )
    return found is not None


async def bookings_by_id(
    conn: AsyncConnection, booking_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Booking]:
    rows = await conn.execute(select(bookings).where(bookings.c.id.in_(booking_ids)))
    return {row["id"]: booking_from_row(row) for row in rows.mappings()}
