"""Bookings waiting for their payment (PENDING_PAYMENT): what the payments domain may do
to them, each step in the caller's transaction or its own.

The seat of such a booking ends at `expiresAt` by itself (claims.expires_at): from then
on anyone may take the slot, whether or not the sweep has marked the booking EXPIRED
yet. So a payment is good for the booking only while its deadline has not passed and
its seat is still there; otherwise the booking expires and the payer is refunded.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import events
from domain.availability import service as availability
from domain.booking import claims as claim_store
from domain.booking.history import record_change
from domain.booking.lifecycle import freed_events
from domain.booking.queries import load_booking
from domain.booking.records import Actor, Booking, BookingStatus
from domain.booking.status import check_transition
from domain.booking.tables import bookings, claims, idempotency_keys

PENDING = BookingStatus.PENDING_PAYMENT


async def mark_paid(conn: AsyncConnection, booking_id: uuid.UUID, now: datetime) -> Booking:
    """The payment for the booking succeeded. In time, with its seat still there, it is
    CONFIRMED (PENDING_CONFIRMATION when the service wants a yes first) and the seat is
    kept for good. Too late, it is EXPIRED. Any other booking is left as it is. Returns
    the booking as it now stands: not active means the caller owes a refund."""
    booking = await load_booking(conn, booking_id, for_update=True)
    assert booking is not None  # a payment always names its booking
    if booking.status is not PENDING:
        return booking
    kept = await conn.scalar(
        update(claims)
        .where(claims.c.booking_id == booking.id, claims.c.expires_at > now)
        .values(expires_at=None)
        .returning(claims.c.id)
    )
    if kept is None:
        return await _expire(conn, booking, "Paid after the booking's deadline.")
    service = await availability.service_by_id(conn, booking.service_id)
    assert service is not None
    target = (
        BookingStatus.PENDING_CONFIRMATION
        if service.requires_confirmation
        else BookingStatus.CONFIRMED
    )
    return await _move(conn, booking, target, Actor.PAYMENT, "paid", freed=False)


async def expire_unpaid(engine: AsyncEngine, now: datetime, most: int = 500) -> int:
    """PENDING_PAYMENT bookings past their deadline become EXPIRED and free their seat
    (the periodic sweep; safe with many processes: each booking is locked and checked)."""
    async with engine.begin() as conn:
        due = (
            await conn.scalars(
                bookings.select()
                .with_only_columns(bookings.c.id)
                .where(bookings.c.status == PENDING.value, bookings.c.expires_at <= now)
                .order_by(bookings.c.expires_at)
                .limit(most)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for booking_id in due:
            booking = await load_booking(conn, booking_id)
            assert booking is not None
            await _expire(conn, booking, None)
    return len(due)


async def abandon_unpaid(engine: AsyncEngine, booking_id: uuid.UUID, reason: str) -> Booking:
    """The payment could not even begin (the provider was unreachable): the booking is
    CANCELLED, its seat freed, and its idempotency key forgotten so the very same request
    may be sent again."""
    async with engine.begin() as conn:
        booking = await load_booking(conn, booking_id, for_update=True)
        assert booking is not None
        if booking.status is not PENDING:
            return booking
        await conn.execute(
            idempotency_keys.delete().where(idempotency_keys.c.booking_id == booking.id)
        )
        return await _move(conn, booking, BookingStatus.CANCELLED, Actor.PAYMENT, reason)


async def _expire(conn: AsyncConnection, booking: Booking, reason: str | None) -> Booking:
    return await _move(conn, booking, BookingStatus.EXPIRED, Actor.SYSTEM, reason)


async def _move(
    conn: AsyncConnection,
    booking: Booking,
    target: BookingStatus,
    actor: Actor,
    reason: str | None,
    *,
    freed: bool = True,
) -> Booking:
    check_transition(booking.status, target, frozenset({actor}))  # status.py's edges
    values: dict[str, object] = {"status": target.value, "expires_at": None}
    if target is BookingStatus.CANCELLED:
        values.update(cancelled_at=func.now(), cancellation_reason=reason)
    await conn.execute(update(bookings).where(bookings.c.id == booking.id).values(**values))
    released = await claim_store.release_booking(conn, booking.id) if freed else []
    changed = await load_booking(conn, booking.id)
    assert changed is not None
    await record_change(conn, changed, actor, reason)
    # Kept for good, the seat no longer frees itself at the deadline: windows that
    # expected it to are told again.
    periods = released or [(booking.staff_id, booking.start, booking.end)]
    await events.record(
        conn,
        events.BookingChanged(booking.id, booking.organization_id),
        *freed_events(booking.organization_id, periods),
    )
    return changed
