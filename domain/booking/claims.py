"""Claims: the rows that take a resource's time. PostgreSQL's exclusion constraint on
them is the no-double-booking guarantee; this module only writes and reads them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, cast, delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import engine
from domain.availability.records import Service
from domain.booking.tables import claims
from ids import uuid7


def session_key(service_id: uuid.UUID, start: datetime) -> str:
    """Seats of one group session (same service, same start) share this key."""
    return f"{service_id}@{int(start.timestamp())}"


async def lock_resources(conn: AsyncConnection, resource_ids: Sequence[uuid.UUID]) -> None:
    """Serializes claim changes per resource for this transaction, always in the same
    order, so two transactions claiming several resources never deadlock."""
    for resource_id in sorted(set(resource_ids)):
        key = int.from_bytes(resource_id.bytes[:8], "big", signed=True)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


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
    before = timedelta(minutes=service.buffer_before_minutes)
    after = timedelta(minutes=service.buffer_after_minutes)
    period = func.tstzrange(start - before, end + after, "[)")
    key = session_key(service.id, start)
    values = {
        "resource_id": resource_id,
        "service_id": service.id,
        "start_at": start,
        "end_at": end,
        "buffer_before_minutes": service.buffer_before_minutes,
        "buffer_after_minutes": service.buffer_after_minutes,
        "period": period,
        "session_key": key,
        "capacity": service.capacity,
        "booking_id": booking_id,
        "hold_id": hold_id,
        "expires_at": expires_at,
    }
    for attempt in range(2):
        for seat in range(1, service.capacity + 1):
            claimed = await conn.scalar(
                pg_insert(claims)
                .values(id=uuid7(), seat=seat, **values)
                .on_conflict_do_nothing()
                .returning(claims.c.id)
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
                    claims.c.period.op("&&")(period),
                    claims.c.expires_at <= now,
                )
                .returning(claims.c.id)
            )
            if not cleared.first():
                return False
    return False


async def release_booking(conn: AsyncConnection, booking_id: uuid.UUID) -> None:
    await conn.execute(delete(claims).where(claims.c.booking_id == booking_id))


async def hand_hold_to_booking(
    conn: AsyncConnection, hold_id: uuid.UUID, booking_id: uuid.UUID
) -> bool:
    """The hold's seat becomes the booking's; False when the hold's claim is gone."""
    moved = await conn.scalar(
        claims.update()
        .where(claims.c.hold_id == hold_id)
        .values(hold_id=None, booking_id=booking_id, expires_at=None)
        .returning(claims.c.id)
    )
    return moved is not None


async def claims_of(
    conn: AsyncConnection,
    resource_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[uuid.UUID, list[engine.Claim]]:
    """Live claims on these resources whose time (buffers included) touches [start, end),
    as the engine's plain data."""
    rows = await conn.execute(
        select(
            claims.c.resource_id,
            claims.c.service_id,
            cast(func.extract("epoch", claims.c.start_at), BigInteger),
            cast(func.extract("epoch", claims.c.end_at), BigInteger),
            claims.c.buffer_before_minutes,
            claims.c.buffer_after_minutes,
        ).where(
            claims.c.resource_id.in_(resource_ids),
            claims.c.period.op("&&")(func.tstzrange(start, end, "[)")),
            or_(claims.c.expires_at.is_(None), claims.c.expires_at > now),
        )
    )
    out: dict[uuid.UUID, list[engine.Claim]] = {r: [] for r in resource_ids}
    for resource_id, service_id, s, e, before, after in rows:
        out[resource_id].append(engine.Claim(str(service_id), s, e, before, after))
    return out
