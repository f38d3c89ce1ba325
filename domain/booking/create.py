"""Making a booking: in one transaction, replay or reserve the idempotency key, choose
the staff member, write the booking with its seat and first history entry, and record
its events."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import events
from domain.availability.records import Service, Staff
from domain.booking import claims as claim_store
from domain.booking.access import new_manage_token
from domain.booking.allocation import claim_slot
from domain.booking.holds import convert_hold
from domain.booking.idempotency import booking_scope, claim_key
from domain.booking.leases import Leases, leased
from domain.booking.queries import load_booking, service_and_org
from domain.booking.records import Actor, Booking, BookingStatus
from domain.booking.requests import BookingRequest, BookingResult, Guest, Policy, check_request
from domain.booking.rows import booking_from_row
from domain.booking.slot_lock import SlotLock
from domain.users.records import Organization
from infra.database import driver
from infra.ids import uuid7

# Unambiguous to read aloud or type: no 0/O, 1/I/L, U.
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
REFERENCE_LENGTH = 8

# What the payments domain does, in the booking's transaction, for a booking that waits
# for its payment (the saga's first step: claim and payment are written together).
OnUnpaid = Callable[[AsyncConnection, Booking], Awaitable[None]]


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


async def create_booking(
    engine: AsyncEngine,
    lock: SlotLock,
    policy: Policy,
    viewer: uuid.UUID | None,
    request: BookingRequest,
    now: datetime,
    on_unpaid: OnUnpaid | None = None,
) -> BookingResult:
    """One transaction: check the request, replay or reserve its key, then choose the
    staff member and write the booking on a seat, or fail with nothing written. A paid
    service's booking is PENDING_PAYMENT until `expiresAt` (its seat frees itself then)
    and `on_unpaid` runs in the same transaction."""
    check_request(request, viewer)
    guest = None if viewer is not None else request.guest
    # The leases outlive the transaction: racers wait until the claim is visible.
    async with leased(lock) as leases, engine.begin() as conn:
        service, org = await service_and_org(conn, request.service_id, "input.serviceId")
        booking_id = uuid7()
        earlier = await _replay_or_reserve_key(conn, request, viewer, guest, booking_id)
        if earlier is not None:
            return BookingResult(earlier, None)
        token, token_hash = (
            new_manage_token(policy.manage_key, booking_id) if guest else (None, None)
        )
        status = _first_status(service)
        expires = now + policy.hold_time(org) if status is BookingStatus.PENDING_PAYMENT else None
        new = _NewBooking(
            conn, booking_id, service, org, request, viewer, token_hash, status, expires, now
        )
        staff = await _allocate_and_write(new, leases)
        if expires is not None:
            if on_unpaid is None:
                raise RuntimeError("a paid booking needs the payments domain's on_unpaid")
            await on_unpaid(conn, new.written[-1])
    return BookingResult(new.written[-1], token, service, staff)


async def _replay_or_reserve_key(
    conn: AsyncConnection,
    request: BookingRequest,
    viewer: uuid.UUID | None,
    guest: Guest | None,
    booking_id: uuid.UUID,
) -> Booking | None:
    """The booking an earlier request with this key made, or None: the key is now
    `booking_id`'s, until this transaction rolls back."""
    scope = booking_scope(viewer, guest)
    earlier = await claim_key(
        conn, scope, request.idempotency_key, request.fingerprint(viewer), booking_id
    )
    if earlier is None:
        return None
    existing = await load_booking(conn, earlier)
    assert existing is not None
    return existing


def _first_status(service: Service) -> BookingStatus:
    if service.price_amount > 0:
        return BookingStatus.PENDING_PAYMENT
    if service.requires_confirmation:
        return BookingStatus.PENDING_CONFIRMATION
    return BookingStatus.CONFIRMED


async def _allocate_and_write(new: _NewBooking, leases: Leases) -> Staff | None:
    """Writes the booking on its hold's seat, or on a seat of the staff member chosen
    now: that staff member as read while choosing (None with a hold)."""
    request = new.request
    if request.hold_id is not None:
        held_by = await convert_hold(
            new.conn, new.viewer, request, new.service, new.now, new.insert, new.id, new.expires
        )
        await events.record(new.conn, *new.made(held_by))
        return None
    return await claim_slot(
        new.conn,
        leases,
        new.service,
        new.org,
        request.start,
        None if request.any_staff else request.staff_id,
        new.now,
        take=new.take,
    )


# The booking and the first entry of its history, in one round trip.
_NEW_BOOKING = """
WITH booking AS (
    INSERT INTO bookings (
        id, reference, organization_id, service_id, staff_id, customer_id, guest_name,
        guest_email, guest_phone, manage_token_hash, start_at, end_at, status, notes,
        price_amount, currency, expires_at
    ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    ON CONFLICT (reference) DO NOTHING RETURNING *
), change AS (
    INSERT INTO booking_changes (booking_id, status, start_at, end_at, actor, staff_id)
    SELECT id, status, start_at, end_at, $18, staff_id FROM booking
)"""
_INSERT_BOOKING = _NEW_BOOKING + " SELECT * FROM booking"  # noqa: S608 - constant text
# ... and the first seat of its session too (claims.take_seat's row, seat 1), which the
# exclusion constraint may refuse: `seated` says.
_INSERT_BOOKING_AND_SEAT = (
    _NEW_BOOKING  # noqa: S608 - constant text
    + """, seat AS (
    INSERT INTO claims (
        id, resource_id, service_id, start_at, end_at, buffer_before_minutes,
        buffer_after_minutes, period, session_key, seat, capacity, booking_id, expires_at
    )
    SELECT $19, staff_id, service_id, start_at, end_at, $20, $21,
           tstzrange(start_at - make_interval(mins => $20),
                     end_at + make_interval(mins => $21), '[)'),
           $22, 1, $23, id, expires_at
    FROM booking
    ON CONFLICT DO NOTHING RETURNING id
), outbox AS (  -- events.record's row: the booking's events, in the same round trip
    """
    + events.outbox_row(24)
    + """
)
SELECT booking.*, EXISTS (SELECT FROM seat) AS seated, """
    + events.NOTIFY
    + " FROM booking"
)


@dataclass(slots=True)
class _NewBooking:
    """The booking this request writes, the same whichever staff member takes it: a
    refused seat rolls back its attempt, and the next one is written afresh."""

    conn: AsyncConnection
    id: uuid.UUID
    service: Service
    org: Organization
    request: BookingRequest
    viewer: uuid.UUID | None
    token_hash: bytes | None
    status: BookingStatus
    expires: datetime | None  # a booking waiting for its payment: its seat's end too
    now: datetime
    written: list[Booking] = field(default_factory=list)  # one per attempt; the last stands

    @property
    def guest(self) -> Guest | None:
        return None if self.viewer is not None else self.request.guest

    def made(self, staff_id: uuid.UUID) -> list[events.Event]:
        period_start, period_end = claim_store.period_of(self.service, self.request.start)
        return [
            events.BookingChanged(self.id, self.service.organization_id),
            events.AvailabilityChanged(
                self.service.organization_id,
                (staff_id,),
                None,
                period_start,
                period_end,
                until=self.expires,
            ),
        ]

    async def insert(self, staff_id: uuid.UUID, *, with_seat: bool = False) -> bool:
        """The booking and its first history entry; with_seat: and its seat and events
        in the same round trip when the first seat is free (True: it was)."""
        service, request, guest = self.service, self.request, self.guest
        raw = await driver(self.conn)
        seat = (
            [
                uuid7(),
                service.buffer_before_minutes,
                service.buffer_after_minutes,
                claim_store.session_key(service.id, request.start),
                service.capacity,
                events.encode(self.made(staff_id)).decode(),
            ]
            if with_seat
            else []
        )
        for _ in range(5):  # a reference collision is ~1 in 10^11: retry a few times
            row = await raw.fetchrow(
                _INSERT_BOOKING_AND_SEAT if with_seat else _INSERT_BOOKING,
                self.id,
                new_reference(),
                service.organization_id,
                service.id,
                staff_id,
                self.viewer,
                guest.name.strip() if guest else None,
                guest.email.strip().lower() if guest else None,
                guest.phone if guest else None,
                self.token_hash,
                request.start,
                request.start + timedelta(minutes=service.duration_minutes),
                self.status.value,
                request.notes,
                service.price_amount,
                self.org.currency,
                self.expires,
                _creator(self.viewer).value,
                *seat,
            )
            if row is not None:
                self.written.append(booking_from_row(row))
                return bool(with_seat and row["seated"])
        raise RuntimeError("could not find a free booking reference")

    async def take(self, staff_id: uuid.UUID) -> bool:
        """`claim_slot`'s seat step: the booking, its seat and its events for this staff
        member."""
        seated = await self.insert(staff_id, with_seat=True)
        events.note(self.conn, *self.made(staff_id))  # the statement wrote them to the outbox
        if seated:
            return True
        # The first seat was not free: a group session may have another, or an
        # expired hold may be in the way.
        return await claim_store.take_seat(
            self.conn,
            staff_id,
            self.service,
            self.request.start,
            self.now,
            booking_id=self.id,
            expires_at=self.expires,
        )


def _creator(viewer: uuid.UUID | None) -> Actor:
    return Actor.CUSTOMER if viewer is not None else Actor.GUEST
