"""What the passing of time does to bookings, run by the app's sweeper: past bookings
complete, expired holds and old idempotency keys go."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import events
from domain.booking.records import Actor, BookingStatus
from domain.booking.tables import booking_changes, bookings, claims, idempotency_keys


async def complete_past_bookings(engine: AsyncEngine, now: datetime) -> int:
    """CONFIRMED bookings whose end has passed become COMPLETED (actor: system)."""
    async with engine.begin() as conn:
        done = (
            await conn.execute(
                update(bookings)
                .where(bookings.c.status == BookingStatus.CONFIRMED.value, bookings.c.end_at <= now)
                .values(status=BookingStatus.COMPLETED.value)
                .returning(
                    bookings.c.id,
                    bookings.c.start_at,
                    bookings.c.end_at,
                    bookings.c.organization_id,
                )
            )
        ).all()
        if done:
            await conn.execute(
                insert(booking_changes).values(
                    [
                        {
                            "booking_id": i,
                            "status": BookingStatus.COMPLETED.value,
                            "start_at": s,
                            "end_at": e,
                            "actor": Actor.SYSTEM.value,
                        }
                        for i, s, e, _ in done
                    ]
                )
            )
            await events.record(conn, *(events.BookingChanged(i, org) for i, _, _, org in done))
    return len(done)


async def clear_expired_holds(engine: AsyncEngine, now: datetime) -> None:
    """Tidiness only: an expired hold already blocks nothing."""
    async with engine.begin() as conn:
        await conn.execute(claims.delete().where(claims.c.expires_at <= now))


async def forget_old_idempotency_keys(engine: AsyncEngine, now: datetime) -> None:
    """Keys are kept 30 days (the contract asks for at least 7)."""
    async with engine.begin() as conn:
        await conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.created_at < now - timedelta(days=30)
            )
        )
