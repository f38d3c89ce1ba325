"""A booking's life after it is made: cancel, confirm, decline (status.py says who may)
and reschedule. Each change writes its history entry and its events in the same
transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import events
from domain.booking import claims as claim_store
from domain.booking.access import roles_of
from domain.booking.allocation import claim_slot
from domain.booking.history import record_change
from domain.booking.idempotency import claim_key, reschedule_fingerprint, reschedule_scope
from domain.booking.leases import leased
from domain.booking.queries import load_booking, service_and_org
from domain.booking.records import ACTIVE, Booking, BookingStatus
from domain.booking.slot_lock import SlotLock
from domain.booking.status import check_reschedule, check_transition
from domain.booking.tables import bookings
from domain.errors import DomainError, ErrorCode


def freed_events(
    organization_id: uuid.UUID, periods: Sequence[tuple[uuid.UUID, datetime, datetime]]
) -> list[events.Event]:
    return [
        events.AvailabilityChanged(organization_id, (resource,), None, start, end)
        for resource, start, end in periods
    ]


async def _transition(
    engine: AsyncEngine,
    viewer: uuid.UUID | None,
    booking_id: uuid.UUID | None,
    target: BookingStatus,
    reason: str | None,
    manage_token: str | None,
    now: datetime,
) -> Booking:
    async with engine.begin() as conn:
        booking = await load_booking(conn, booking_id, for_update=True) if booking_id else None
        roles = await roles_of(conn, booking, viewer, manage_token) if booking else frozenset()
        if booking is None or not roles:
            raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "bookingId")
        actor = check_transition(booking.status, target, roles)
        values: dict[str, object] = {"status": target.value}
        if target is BookingStatus.CANCELLED:
            values.update(cancelled_at=now, cancellation_reason=reason)
        if target is BookingStatus.DECLINED:
            values.update(cancellation_reason=reason)
        await conn.execute(update(bookings).where(bookings.c.id == booking.id).values(**values))
        freed = await claim_store.release_booking(conn, booking.id) if target not in ACTIVE else []
        changed = await load_booking(conn, booking.id)
        assert changed is not None
        await record_change(conn, changed, actor, reason)
        await events.record(
            conn,
            events.BookingChanged(booking.id, booking.organization_id),
            *freed_events(booking.organization_id, freed),
        )
    return changed


async def cancel_booking(
    engine: AsyncEngine,
    viewer: uuid.UUID | None,
    booking_id: uuid.UUID | None,
    reason: str | None,
    manage_token: str | None,
    now: datetime,
) -> Booking:
    return await _transition(
        engine, viewer, booking_id, BookingStatus.CANCELLED, reason, manage_token, now
    )


async def confirm_booking(
    engine: AsyncEngine, viewer: uuid.UUID | None, booking_id: uuid.UUID | None, now: datetime
) -> Booking:
    return await _transition(engine, viewer, booking_id, BookingStatus.CONFIRMED, None, None, now)


async def decline_booking(
    engine: AsyncEngine,
    viewer: uuid.UUID | None,
    booking_id: uuid.UUID | None,
    reason: str | None,
    now: datetime,
) -> Booking:
    return await _transition(engine, viewer, booking_id, BookingStatus.DECLINED, reason, None, now)


async def reschedule_booking(
    engine: AsyncEngine,
    lock: SlotLock,
    viewer: uuid.UUID | None,
    booking_id: uuid.UUID | None,
    start: datetime,
    staff_id: uuid.UUID | None,
    any_staff: bool,
    idempotency_key: str,
    manage_token: str | None,
    now: datetime,
) -> Booking:
    """Takes the new slot and frees the old one in one transaction, or changes nothing.
    The booking keeps its id and reference."""
    if not 1 <= len(idempotency_key) <= 200:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "Send an idempotency key of 1 to 200 characters.",
            "input.idempotencyKey",
        )
    if staff_id is None and not any_staff:
        raise DomainError(ErrorCode.NOT_FOUND, "No such staff member.", "input.staffId")
    # The leases outlive the transaction: racers wait until the claim is visible.
    async with leased(lock) as leases, engine.begin() as conn:
        booking = await load_booking(conn, booking_id, for_update=True) if booking_id else None
        roles = await roles_of(conn, booking, viewer, manage_token) if booking else frozenset()
        if booking is None or not roles:
            raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "input.bookingId")
        fingerprint = reschedule_fingerprint(start, staff_id, any_staff)
        if await claim_key(
            conn, reschedule_scope(booking.id), idempotency_key, fingerprint, booking.id
        ):
            return booking  # a replay: the move was made already
        actor = check_reschedule(booking.status, roles)
        service, org = await service_and_org(conn, booking.service_id, "input.bookingId")
        # The booking's own seat must not stand in its own way (moving by 15 minutes).
        freed = await claim_store.release_booking(conn, booking.id)

        async def move(chosen: uuid.UUID) -> bool:
            await conn.execute(
                update(bookings)
                .where(bookings.c.id == booking.id)
                .values(
                    staff_id=chosen,
                    start_at=start,
                    end_at=start + timedelta(minutes=service.duration_minutes),
                )
            )
            # A booking waiting for its payment keeps its deadline on the new seat.
            return await claim_store.take_seat(
                conn,
                chosen,
                service,
                start,
                now,
                booking_id=booking.id,
                expires_at=booking.expires_at,
            )

        # Its old staff member is locked with the new ones, in one sorted order, so
        # two bookings swapping places cannot deadlock.
        await claim_slot(
            conn,
            leases,
            service,
            org,
            start,
            None if any_staff else staff_id,
            now,
            take=move,
            also_lock=[booking.staff_id],
        )
        moved = await load_booking(conn, booking.id)
        assert moved is not None
        await record_change(conn, moved, actor, "rescheduled")
        period_start, period_end = claim_store.period_of(service, start)
        await events.record(
            conn,
            events.BookingChanged(booking.id, booking.organization_id),
            *freed_events(booking.organization_id, freed),
            events.AvailabilityChanged(
                booking.organization_id, (moved.staff_id,), None, period_start, period_end
            ),
        )
    return moved
