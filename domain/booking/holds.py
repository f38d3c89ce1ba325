"""Holds: a seat kept for a few minutes while someone fills in the booking form, and
its hand-over to the booking made from it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import events
from domain.availability.records import Service
from domain.booking import claims as claim_store
from domain.booking.allocation import claim_slot
from domain.booking.leases import leased
from domain.booking.queries import service_and_org
from domain.booking.records import Hold
from domain.booking.requests import BookingRequest, Policy
from domain.booking.rows import hold_from_row
from domain.booking.slot_lock import SlotLock
from domain.booking.tables import holds
from domain.errors import DomainError, ErrorCode
from infra.ids import uuid7


async def hold_slot(
    engine: AsyncEngine,
    lock: SlotLock,
    policy: Policy,
    viewer: uuid.UUID | None,
    service_id: uuid.UUID | None,
    start: datetime,
    staff_id: uuid.UUID | None,
    any_staff: bool,
    now: datetime,
) -> Hold:
    if staff_id is None and not any_staff:
        raise DomainError(ErrorCode.NOT_FOUND, "No such staff member.", "input.staffId")
    # The leases outlive the transaction: racers wait until the claim is visible.
    async with leased(lock) as leases, engine.begin() as conn:
        service, org = await service_and_org(conn, service_id, "input.serviceId")
        hold_id = uuid7()
        expires = now + policy.hold_time(org)

        async def take(chosen: uuid.UUID) -> bool:
            await conn.execute(
                insert(holds).values(
                    id=hold_id,
                    service_id=service.id,
                    staff_id=chosen,
                    user_id=viewer,
                    start_at=start,
                    end_at=start + timedelta(minutes=service.duration_minutes),
                    expires_at=expires,
                )
            )
            return await claim_store.take_seat(
                conn, chosen, service, start, now, hold_id=hold_id, expires_at=expires
            )

        chosen = await claim_slot(
            conn,
            leases,
            service,
            org,
            start,
            staff_id,
            now,
            take=take,
        )
        period_start, period_end = claim_store.period_of(service, start)
        await events.record(
            conn,
            events.AvailabilityChanged(
                org.id, (chosen.id,), None, period_start, period_end, until=expires
            ),
        )
        row = (await conn.execute(select(holds).where(holds.c.id == hold_id))).mappings().one()
    return hold_from_row(row)


async def convert_hold(
    conn: AsyncConnection,
    viewer: uuid.UUID | None,
    request: BookingRequest,
    service: Service,
    now: datetime,
    insert_booking: Callable[[uuid.UUID], Awaitable[bool]],
    booking_id: uuid.UUID,
    expires: datetime | None,
) -> uuid.UUID:
    """The hold's seat becomes the booking's (until `expires` for one waiting for its
    payment): the staff member's id."""
    row = (
        (await conn.execute(select(holds).where(holds.c.id == request.hold_id).with_for_update()))
        .mappings()
        .first()
    )
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such hold.", "input.holdId")
    hold = hold_from_row(row)
    if hold.user_id is not None and hold.user_id != viewer:
        raise DomainError(ErrorCode.FORBIDDEN, "This hold belongs to someone else.", "input.holdId")
    if hold.booking_id is not None or hold.expires_at <= now:
        raise DomainError(
            ErrorCode.HOLD_EXPIRED, "The hold has expired; choose a time again.", "input.holdId"
        )
    if (
        hold.service_id != service.id
        or hold.start != request.start
        or (not request.any_staff and request.staff_id != hold.staff_id)
    ):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "The hold is for another service, time or staff member.",
            "input.holdId",
        )
    await insert_booking(hold.staff_id)
    if not await claim_store.hand_hold_to_booking(conn, hold.id, booking_id, expires):
        raise DomainError(
            ErrorCode.HOLD_EXPIRED, "The hold has expired; choose a time again.", "input.holdId"
        )
    await conn.execute(update(holds).where(holds.c.id == hold.id).values(booking_id=booking_id))
    return hold.staff_id
