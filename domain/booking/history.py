"""A booking's history: one entry per change of status or time, and who made it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.booking.records import Actor, Booking, BookingChange, BookingStatus
from domain.booking.tables import booking_changes
from infra.database import driver

_INSERT_CHANGE = """
INSERT INTO booking_changes (booking_id, status, start_at, end_at, actor, reason, staff_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""


async def record_change(
    conn: AsyncConnection, booking: Booking, actor: Actor, reason: str | None
) -> None:
    await (await driver(conn)).execute(
        _INSERT_CHANGE,
        booking.id,
        booking.status.value,
        booking.start,
        booking.end,
        actor.value,
        reason,
        booking.staff_id,
    )


async def history_of(
    conn: AsyncConnection, booking_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[BookingChange]]:
    rows = await conn.execute(
        select(booking_changes)
        .where(booking_changes.c.booking_id.in_(list(booking_ids)))
        .order_by(booking_changes.c.booking_id, booking_changes.c.id)
    )
    out: dict[uuid.UUID, list[BookingChange]] = {b: [] for b in booking_ids}
    for r in rows.mappings():
        out[r["booking_id"]].append(
            BookingChange(
                r["at"],
                BookingStatus(r["status"]),
                r["start_at"],
                r["end_at"],
                Actor(r["actor"]),
                r["reason"],
                r["staff_id"],
            )
        )
    return out
