"""Choosing the staff member and claiming the seat: what is offered at a start, why a
start is refused, who is fairest to take it, and the claim itself, which only
PostgreSQL's exclusion constraint decides."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.availability.engine import Claim
from domain.availability.records import Service, Staff
from domain.booking import claims as claim_store
from domain.booking.leases import Leases
from domain.booking.records import ACTIVE
from domain.booking.tables import bookings
from domain.errors import DomainError, ErrorCode
from domain.users.records import Organization


def claims_loader(now: datetime) -> availability.ClaimsLoader:
    async def load(
        conn: AsyncConnection, staff_ids: list[uuid.UUID], start: datetime, end: datetime
    ) -> dict[uuid.UUID, list[Claim]]:
        return await claim_store.claims_of(conn, staff_ids, start, end, now)

    return load


async def offer_at(
    conn: AsyncConnection,
    service: Service,
    start: datetime,
    staff_id: uuid.UUID | None,
    now: datetime,
) -> dict[uuid.UUID, Staff]:
    """Who can take `service` at exactly `start` now: the very function that draws the
    slots customers see."""
    offer = await availability.availability(
        conn, service, start, start + timedelta(seconds=1), staff_id, now, claims_loader(now)
    )
    for slot in offer.slots:
        if slot.start == int(start.timestamp()):
            return {uuid.UUID(s): offer.staff[s] for s in slot.staff_ids}
    return {}


def _outside_window(service: Service, start: datetime, now: datetime) -> bool:
    return start < now + timedelta(minutes=service.min_notice_minutes) or start > now + timedelta(
        days=service.max_advance_days
    )


async def _refusal(
    conn: AsyncConnection,
    service: Service,
    start: datetime,
    staff_id: uuid.UUID | None,
    now: datetime,
) -> DomainError:
    """Why a start that is not offered was refused: too soon or too far, taken by
    others (it would be offered with no bookings and holds), or never offered at all
    (off the grid, outside working hours, in time off)."""
    if _outside_window(service, start, now):
        return DomainError(
            ErrorCode.OUTSIDE_BOOKING_WINDOW,
            "This time is too soon or too far ahead to book.",
            "input.start",
        )
    unclaimed = await availability.availability(
        conn, service, start, start + timedelta(seconds=1), staff_id, now
    )
    if any(slot.start == int(start.timestamp()) for slot in unclaimed.slots):
        return _taken()
    return DomainError(
        ErrorCode.SLOT_UNAVAILABLE,
        "This time is not offered; pick one of the listed slots.",
        "input.start",
    )


def _taken() -> DomainError:
    return DomainError(
        ErrorCode.SLOT_UNAVAILABLE, "This time is no longer available.", "input.start"
    )


async def _fairest_first(
    conn: AsyncConnection, staff_ids: Sequence[uuid.UUID], start: datetime, zone: str
) -> list[uuid.UUID]:
    """Fewest active bookings that (local) day first; ties by id, so the order is stable."""
    tz = ZoneInfo(zone)
    local_day = start.astimezone(tz).date()
    day_start = datetime.combine(local_day, datetime.min.time(), tz)
    day_end = datetime.combine(local_day + timedelta(days=1), datetime.min.time(), tz)
    rows = await conn.execute(
        select(bookings.c.staff_id, func.count())
        .where(
            bookings.c.staff_id.in_(list(staff_ids)),
            bookings.c.status.in_([s.value for s in ACTIVE]),
            bookings.c.start_at >= day_start,
            bookings.c.start_at < day_end,
        )
        .group_by(bookings.c.staff_id)
    )
    load: dict[uuid.UUID, int] = {staff_id: count for staff_id, count in rows}
    return sorted(staff_ids, key=lambda s: (load.get(s, 0), s))


# Writes the request's own row for this staff member and claims its seat; False when the
# database refused the seat.
SeatStep = Callable[[uuid.UUID], Awaitable[bool]]


class _SeatRefused(Exception):
    """The database refused the claim; the savepoint rolled back."""


async def claim_slot(
    conn: AsyncConnection,
    leases: Leases,
    service: Service,
    org: Organization,
    start: datetime,
    staff_id: uuid.UUID | None,
    now: datetime,
    *,
    take: SeatStep,
    also_lock: Sequence[uuid.UUID] = (),
) -> Staff:
    """Checks the rules at commit time, picks the staff member, claims the seat: the
    chosen staff member, or an error. Only the exclusion constraint decides; the
    fast-path lock and the resource lock only keep racers from piling up."""
    # The rules first, the lease after: a request they refuse anyway (outside the
    # window, off the grid, in another booking's buffer) must not hold a lease that
    # turns a valid concurrent request for this staff member and start away.
    offered = await offer_at(conn, service, start, staff_id, now)
    if not offered:
        raise await _refusal(conn, service, start, staff_id, now)
    candidates = (
        [staff_id]
        if staff_id is not None
        else await _fairest_first(conn, list(offered), start, org.time_zone)
    )
    exclusive = service.capacity == 1  # seats of a group session do not race each other
    if exclusive:
        # Lease the first candidate free on the fast path, not all of them, so that
        # concurrent any-staff requests spread over the other staff members; the ones
        # after it stay as fallbacks that PostgreSQL alone decides.
        for i, candidate in enumerate(candidates):
            if await leases.take(candidate, start):
                candidates = candidates[i:]
                break
        else:
            raise _taken()
    if len(candidates) > 1 or also_lock:
        # Several staff members to choose from, or several resources to change: lock
        # them in one order (no deadlock) and look again, now that nobody else can
        # claim them. With one staff member and nothing else, the rules were just
        # checked in this transaction and the exclusion constraint decides the rest:
        # neither the lock nor a second look would change the answer.
        await claim_store.lock_resources(conn, [*candidates, *also_lock])
        offered = await offer_at(conn, service, start, staff_id, now)
        if not offered:
            raise await _refusal(conn, service, start, staff_id, now)
        candidates = [c for c in candidates if c in offered]
    if len(candidates) == 1:
        # One candidate: a refusal fails the whole transaction, no savepoint needed.
        if not await take(candidates[0]):
            raise _taken()
        return offered[candidates[0]]
    for candidate in candidates:
        try:
            async with conn.begin_nested():
                if not await take(candidate):
                    raise _SeatRefused
        except _SeatRefused:
            continue
        return offered[candidate]
    raise _taken()
