"""Claims: the rows that take a resource's time. PostgreSQL's exclusion constraint on
them is the no-double-booking guarantee; this module only writes and reads them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import engine
from domain.availability.records import Service
from domain.booking.tables import claims
from infra.database import driver
from infra.ids import uuid7


def session_key(service_id: uuid.UUID, start: datetime) -> str:
    """Seats of one group session (same service, same start) share this key."""
    return f"{service_id}@{int(start.timestamp())}"


async def lock_resources(conn: AsyncConnection, resource_ids: Sequence[uuid.UUID]) -> None:
    """Serializes claim changes per resource for this transaction, always in the same
    order, so two transactions claiming several resources never deadlock."""
    for resource_id in sorted(set(resource_ids)):
        key = int.from_bytes(resource_id.bytes[:8], "big", signed=True)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


_INSERT_CLAIM = """
INSERT INTO claims (
    id, resource_id, service_id, start_at, end_at, buffer_before_minutes,
    buffer_after_minutes, period, session_key, seat, capacity, booking_id, hold_id, expires_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, tstzrange($8, $9, '[)'), $10, $11, $12, $13, $14, $15)
ON CONFLICT DO NOTHING RETURNING id"""


async def take_seat(
    conn: AsyncConnection,
    resource_id: uuid.UUID,
    service: Service,
    start: datetime,
    now: datetime,
    *,
    booking_id: uuid.UUID | None = None,
    hold_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
) -> bool:
    """Claims one seat of `service` at `start` on the resource; False when the database
    refuses (the time is taken, or the session is full)."""
    end = start + timedelta(minutes=service.duration_minutes)
    period_start, period_end = period_of(service, start)
    key = session_key(service.id, start)
    raw = await driver(conn)
    for attempt in range(2):
        for seat in range(1, service.capacity + 1):
            claimed = await raw.fetchval(
                _INSERT_CLAIM,
                uuid7(),
                resource_id,
                service.id,
                start,
                end,
                service.buffer_before_minutes,
                service.buffer_after_minutes,
                period_start,
                period_end,
                key,
                seat,
                service.capacity,
                booking_id,
                hold_id,
                expires_at,
            )
            if claimed is not None:
                return True
        if attempt == 0:
            # An expired hold blocks nothing: clear the ones in the way (in this
            # transaction) and try once more. Rare, so not done up front.
            cleared = await conn.execute(
                delete(claims)
                .where(
                    claims.c.resource_id == resource_id,
                    claims.c.period.op("&&")(func.tstzrange(period_start, period_end, "[)")),
                    claims.c.expires_at <= now,
                )
                .returning(claims.c.id)
            )
            if not cleared.first():
                return False
    return False


async def release_booking(
    conn: AsyncConnection, booking_id: uuid.UUID
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """Frees the booking's seats: the resources and periods (buffers included) freed."""
    rows = await (await driver(conn)).fetch(_RELEASE_BOOKING, booking_id)
    return [(r["resource_id"], r["lower"], r["upper"]) for r in rows]


_RELEASE_BOOKING = """
DELETE FROM claims WHERE booking_id = $1 RETURNING resource_id, lower(period), upper(period)"""


def period_of(service: Service, start: datetime) -> tuple[datetime, datetime]:
    """The time a seat of `service` at `start` takes: the appointment and its buffers."""
    end = start + timedelta(minutes=service.duration_minutes)
    return (
        start - timedelta(minutes=service.buffer_before_minutes),
        end + timedelta(minutes=service.buffer_after_minutes),
    )


async def hand_hold_to_booking(
    conn: AsyncConnection, hold_id: uuid.UUID, booking_id: uuid.UUID, expires: datetime | None
) -> bool:
    """The hold's seat becomes the booking's, for good or (a booking waiting for its
    payment) until `expires`; False when the hold's claim is gone."""
    moved = await conn.scalar(
        claims.update()
        .where(claims.c.hold_id == hold_id)
        .values(hold_id=None, booking_id=booking_id, expires_at=expires)
        .returning(claims.c.id)
    )
    return moved is not None


_LIVE_CLAIMS = """
SELECT resource_id, service_id,
       CAST(EXTRACT(epoch FROM start_at) AS bigint), CAST(EXTRACT(epoch FROM end_at) AS bigint),
       buffer_before_minutes, buffer_after_minutes
FROM claims
WHERE resource_id = ANY($1::uuid[]) AND period && tstzrange($2, $3, '[)')
  AND (expires_at IS NULL OR expires_at > $4)"""


async def claims_of(
    conn: AsyncConnection,
    resource_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[uuid.UUID, list[engine.Claim]]:
    """Live claims on these resources whose time (buffers included) touches [start, end),
    as the engine's plain data."""
    rows = await (await driver(conn)).fetch(_LIVE_CLAIMS, list(resource_ids), start, end, now)
    out: dict[uuid.UUID, list[engine.Claim]] = {r: [] for r in resource_ids}
    for resource_id, service_id, s, e, before, after in rows:
        out[resource_id].append(engine.Claim(str(service_id), s, e, before, after))
    return out
