"""The booking domain's public API: holds, bookings and their life.

Every write runs in its own transaction opened here, because the fast-path slot
lock must be released only after the commit made the claim visible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import events
from domain.availability import service as availability
from domain.availability.engine import Claim
from domain.availability.records import Service, Staff
from domain.booking import claims as claim_store
from domain.booking.records import ACTIVE, Actor, Booking, BookingChange, BookingStatus, Hold
from domain.booking.slot_lock import SlotLock
from domain.booking.status import check_reschedule, check_transition
from domain.booking.tables import booking_changes, bookings, holds, idempotency_keys
from domain.errors import DomainError, ErrorCode, Problems
from domain.users import service as users
from domain.users.records import MANAGERS, Organization
from domain.validation import is_email, is_phone
from infra.database import driver
from infra.ids import uuid7

# Unambiguous to read aloud or type: no 0/O, 1/I/L, U.
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
REFERENCE_LENGTH = 8
MAX_NOTES = 2000


# ---- records ------------------------------------------------------------------------------


def _booking(row: RowMapping) -> Booking:
    return Booking(
        id=row["id"],
        reference=row["reference"],
        organization_id=row["organization_id"],
        service_id=row["service_id"],
        staff_id=row["staff_id"],
        customer_id=row["customer_id"],
        guest_name=row["guest_name"],
        guest_email=row["guest_email"],
        guest_phone=row["guest_phone"],
        start=row["start_at"],
        end=row["end_at"],
        status=BookingStatus(row["status"]),
        notes=row["notes"],
        price_amount=row["price_amount"],
        currency=row["currency"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        cancellation_reason=row["cancellation_reason"],
    )


def _hold(row: RowMapping) -> Hold:
    return Hold(
        id=row["id"],
        service_id=row["service_id"],
        staff_id=row["staff_id"],
        user_id=row["user_id"],
        start=row["start_at"],
        end=row["end_at"],
        expires_at=row["expires_at"],
        booking_id=row["booking_id"],
    )


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def new_manage_token() -> tuple[str, bytes]:
    """A guest's manage token (192 random bits, shown once) and the hash we keep."""
    token = secrets.token_urlsafe(24)
    return token, hashlib.sha256(token.encode()).digest()


def token_matches(stored_hash: bytes | None, token: str | None) -> bool:
    if stored_hash is None or not token:
        return False
    return hmac.compare_digest(stored_hash, hashlib.sha256(token.encode()).digest())


# ---- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Guest:
    name: str
    email: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class BookingRequest:
    service_id: uuid.UUID | None  # None: the id named no service
    start: datetime
    staff_id: uuid.UUID | None
    any_staff: bool
    idempotency_key: str
    hold_id: uuid.UUID | None
    hold_id_given: bool
    notes: str | None
    guest: Guest | None

    def fingerprint(self, viewer: uuid.UUID | None) -> bytes:
        """What makes two requests "the same input" for idempotency."""
        body = {
            "service": str(self.service_id),
            "start": int(self.start.timestamp()),
            "staff": None if self.any_staff else str(self.staff_id),
            "hold": str(self.hold_id) if self.hold_id_given else None,
            "notes": self.notes,
            "guest": None
            if viewer or self.guest is None
            else [
                self.guest.name,
                self.guest.email.lower(),
                self.guest.phone,
            ],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


@dataclass(frozen=True, slots=True)
class BookingResult:
    booking: Booking
    manage_token: str | None  # only for a guest's new booking, never on a replay
    # What the booking was made with, read in its transaction: the caller may show them
    # without reading them again (None on a replay).
    service: Service | None = None
    staff: Staff | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """What the deployment decides: BOOKING_HOLD_SECONDS overrides every organization."""

    hold_seconds: int | None = None

    def hold_time(self, org: Organization) -> timedelta:
        if self.hold_seconds is not None:
            return timedelta(seconds=self.hold_seconds)
        return timedelta(minutes=org.hold_minutes)


# ---- shared steps -------------------------------------------------------------------------


async def _service_and_org(
    conn: AsyncConnection, service_id: uuid.UUID | None, field: str
) -> tuple[Service, Organization]:
    service = await availability.service_by_id(conn, service_id) if service_id else None
    if service is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such service.", field)
    org = await users.organization_by_id(conn, service.organization_id)
    assert org is not None
    return service, org


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


_INSERT_CHANGE = """
INSERT INTO booking_changes (booking_id, status, start_at, end_at, actor, reason)
VALUES ($1, $2, $3, $4, $5, $6)"""


async def _record_change(
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
    )


async def _load_booking(
    conn: AsyncConnection, booking_id: uuid.UUID, *, for_update: bool = False
) -> Booking | None:
    query = select(bookings).where(bookings.c.id == booking_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return _booking(row) if row else None


async def roles_of(
    conn: AsyncConnection,
    booking: Booking,
    viewer: uuid.UUID | None,
    manage_token: str | None,
    token_hash: bytes | None = None,
) -> frozenset[Actor]:
    """What the viewer is to this booking; empty: a stranger."""
    roles: set[Actor] = set()
    if token_hash is None and manage_token:
        token_hash = await conn.scalar(
            select(bookings.c.manage_token_hash).where(bookings.c.id == booking.id)
        )
    if token_matches(token_hash, manage_token):
        roles.add(Actor.GUEST)
    if viewer is not None:
        if booking.customer_id == viewer:
            roles.add(Actor.CUSTOMER)
        staff = (await availability.staff_by_id(conn, [booking.staff_id])).get(booking.staff_id)
        if staff is not None and staff.user_id == viewer:
            roles.add(Actor.STAFF)
        if await users.role_in(conn, viewer, booking.organization_id) in MANAGERS:
            roles.add(Actor.ADMIN)
    return frozenset(roles)


# ---- idempotency --------------------------------------------------------------------------


_INSERT_KEY = """
INSERT INTO idempotency_keys (scope, key, request_hash, booking_id) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING RETURNING key"""


async def _claim_key(
    conn: AsyncConnection, scope: str, key: str, fingerprint: bytes, booking_id: uuid.UUID
) -> uuid.UUID | None:
    """Registers the key for this transaction's booking, or returns the booking an
    earlier request with the same key made. A concurrent request with the same key
    waits here for the first to commit (the primary key's index), so one key makes
    one booking however many copies race. A failed attempt rolls its key back."""
    inserted = await (await driver(conn)).fetchval(_INSERT_KEY, scope, key, fingerprint, booking_id)
    if inserted is not None:
        return None
    row = (
        await conn.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.booking_id).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
            )
        )
    ).one()
    if row.request_hash != fingerprint:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was used for a different request.",
            "input.idempotencyKey",
        )
    assert row.booking_id is not None
    return uuid.UUID(str(row.booking_id))


def _check_request(request: BookingRequest, viewer: uuid.UUID | None) -> None:
    problems = Problems()
    if not 1 <= len(request.idempotency_key) <= 200:
        problems.add("input.idempotencyKey", "Send an idempotency key of 1 to 200 characters.")
    if request.notes is not None and len(request.notes) > MAX_NOTES:
        problems.add("input.notes", f"Use at most {MAX_NOTES} characters.")
    if viewer is None:
        if request.guest is None:
            problems.add("input.guest", "Sign in, or give your name and e-mail to book as a guest.")
        else:
            if not request.guest.name.strip():
                problems.add("input.guest.name", "Enter your name.")
            if not is_email(request.guest.email.strip().lower()):
                problems.add("input.guest.email", "Enter a valid e-mail address.")
            if request.guest.phone and not is_phone(request.guest.phone):
                problems.add("input.guest.phone", "Enter the phone number like +14155550123.")
    if request.staff_id is None and not request.any_staff:
        problems.add("input.staffId", "No such staff member.")
    if request.hold_id_given and request.hold_id is None:
        problems.add("input.holdId", "No such hold.")
    problems.check()


# ---- holds --------------------------------------------------------------------------------


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
    # The lease is released after the commit (or the rollback): racers wait until
    # the claim is visible.
    async with _leased(lock) as leases, engine.begin() as conn:
        service, org = await _service_and_org(conn, service_id, "input.serviceId")
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

        chosen = await _claim_slot(
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
    return _hold(row)


class Leases:
    """Fast-path slot locks taken by one request, released after its commit."""

    def __init__(self, lock: SlotLock) -> None:
        self.lock = lock
        self.held: list[tuple[str, str]] = []

    async def take(self, staff_id: uuid.UUID, start: datetime) -> bool:
        key = f"slot:{staff_id}:{int(start.timestamp())}"
        token = await self.lock.acquire(key)
        if token is None:
            return False
        self.held.append((key, token))
        return True

    async def release(self) -> None:
        for key, token in self.held:
            await self.lock.release(key, token)
        self.held.clear()


@asynccontextmanager
async def _leased(lock: SlotLock) -> AsyncIterator[Leases]:
    leases = Leases(lock)
    try:
        yield leases
    finally:
        await leases.release()


# Writes the request's own row for this staff member and claims its seat; False when the
# database refused the seat.
SeatStep = Callable[[uuid.UUID], Awaitable[bool]]


class _SeatRefused(Exception):
    """The database refused the claim; the savepoint rolled back."""


async def _claim_slot(
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


def _freed(
    organization_id: uuid.UUID, periods: Sequence[tuple[uuid.UUID, datetime, datetime]]
) -> list[events.Event]:
    return [
        events.AvailabilityChanged(organization_id, (resource,), None, start, end)
        for resource, start, end in periods
    ]


def _taken() -> DomainError:
    return DomainError(
        ErrorCode.SLOT_UNAVAILABLE, "This time is no longer available.", "input.start"
    )


# ---- bookings -----------------------------------------------------------------------------


# The booking and the first entry of its history, in one round trip.
_NEW_BOOKING = """
WITH booking AS (
    INSERT INTO bookings (
        id, reference, organization_id, service_id, staff_id, customer_id, guest_name,
        guest_email, guest_phone, manage_token_hash, start_at, end_at, status, notes,
        price_amount, currency
    ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
    ON CONFLICT (reference) DO NOTHING RETURNING *
), change AS (
    INSERT INTO booking_changes (booking_id, status, start_at, end_at, actor)
    SELECT id, status, start_at, end_at, $17 FROM booking
)"""
_INSERT_BOOKING = _NEW_BOOKING + " SELECT * FROM booking"  # noqa: S608 - constant text
# ... and the first seat of its session too (claims.take_seat's row, seat 1), which the
# exclusion constraint may refuse: `seated` says.
_INSERT_BOOKING_AND_SEAT = (
    _NEW_BOOKING  # noqa: S608 - constant text
    + """, seat AS (
    INSERT INTO claims (
        id, resource_id, service_id, start_at, end_at, buffer_before_minutes,
        buffer_after_minutes, period, session_key, seat, capacity, booking_id
    )
    SELECT $18, staff_id, service_id, start_at, end_at, $19, $20,
           tstzrange(start_at - make_interval(mins => $19),
                     end_at + make_interval(mins => $20), '[)'),
           $21, 1, $22, id
    FROM booking
    ON CONFLICT DO NOTHING RETURNING id
), outbox AS (  -- events.record's row: the booking's events, in the same round trip
    INSERT INTO outbox (kind, payload) VALUES ('events', $23::jsonb)
)
SELECT booking.*, EXISTS (SELECT FROM seat) AS seated, pg_notify('outbox', '') FROM booking"""
)


async def create_booking(
    engine: AsyncEngine,
    lock: SlotLock,
    policy: Policy,
    viewer: uuid.UUID | None,
    request: BookingRequest,
    now: datetime,
) -> BookingResult:
    _check_request(request, viewer)
    guest = None if viewer is not None else request.guest
    scope = f"user:{viewer}" if viewer else f"guest:{guest.email.strip().lower() if guest else ''}"
    # The lease is released after the commit (or the rollback): racers wait until
    # the claim is visible.
    async with _leased(lock) as leases, engine.begin() as conn:
        service, org = await _service_and_org(conn, request.service_id, "input.serviceId")
        booking_id = uuid7()
        earlier = await _claim_key(
            conn, scope, request.idempotency_key, request.fingerprint(viewer), booking_id
        )
        if earlier is not None:
            existing = await _load_booking(conn, earlier)
            assert existing is not None
            return BookingResult(existing, None)
        created: list[Booking] = []
        token, token_hash = new_manage_token() if guest else (None, None)
        status = (
            BookingStatus.PENDING_CONFIRMATION
            if service.requires_confirmation
            else BookingStatus.CONFIRMED
        )

        async def insert_booking(staff_id: uuid.UUID, *, with_seat: bool = False) -> bool:
            """The booking and its first history entry; with_seat: and its seat in the
            same round trip when the first seat is free (True: it was)."""
            raw = await driver(conn)
            seat = (
                [
                    uuid7(),
                    service.buffer_before_minutes,
                    service.buffer_after_minutes,
                    claim_store.session_key(service.id, request.start),
                    service.capacity,
                    events.encode(made(staff_id)).decode(),
                ]
                if with_seat
                else []
            )
            for _ in range(5):  # a reference collision is ~1 in 10^11: retry a few times
                row = await raw.fetchrow(
                    _INSERT_BOOKING_AND_SEAT if with_seat else _INSERT_BOOKING,
                    booking_id,
                    new_reference(),
                    service.organization_id,
                    service.id,
                    staff_id,
                    viewer,
                    guest.name.strip() if guest else None,
                    guest.email.strip().lower() if guest else None,
                    guest.phone if guest else None,
                    token_hash,
                    request.start,
                    request.start + timedelta(minutes=service.duration_minutes),
                    status.value,
                    request.notes,
                    service.price_amount,
                    org.currency,
                    _creator(viewer).value,
                    *seat,
                )
                if row is not None:
                    created.append(_booking(row))
                    return bool(with_seat and row["seated"])
            raise RuntimeError("could not find a free booking reference")

        def made(staff_id: uuid.UUID) -> list[events.Event]:
            period_start, period_end = claim_store.period_of(service, request.start)
            return [
                events.BookingChanged(booking_id, service.organization_id),
                events.AvailabilityChanged(
                    service.organization_id, (staff_id,), None, period_start, period_end
                ),
            ]

        async def take(staff_id: uuid.UUID) -> bool:
            seated = await insert_booking(staff_id, with_seat=True)
            events.note(conn, *made(staff_id))  # the statement wrote them to the outbox
            if seated:
                return True
            # The first seat was not free: a group session may have another, or an
            # expired hold may be in the way.
            return await claim_store.take_seat(
                conn, staff_id, service, request.start, now, booking_id=booking_id
            )

        staff = None
        if request.hold_id is not None:
            held_by = await _convert_hold(
                conn, viewer, request, service, now, insert_booking, booking_id
            )
            await events.record(conn, *made(held_by))
        else:
            staff = await _claim_slot(
                conn,
                leases,
                service,
                org,
                request.start,
                None if request.any_staff else request.staff_id,
                now,
                take=take,
            )
    return BookingResult(created[-1], token, service, staff)


def _creator(viewer: uuid.UUID | None) -> Actor:
    return Actor.CUSTOMER if viewer is not None else Actor.GUEST


async def _convert_hold(
    conn: AsyncConnection,
    viewer: uuid.UUID | None,
    request: BookingRequest,
    service: Service,
    now: datetime,
    insert_booking: Callable[[uuid.UUID], Awaitable[bool]],
    booking_id: uuid.UUID,
) -> uuid.UUID:
    """The hold's seat becomes the booking's: the staff member's id."""
    row = (
        (await conn.execute(select(holds).where(holds.c.id == request.hold_id).with_for_update()))
        .mappings()
        .first()
    )
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such hold.", "input.holdId")
    hold = _hold(row)
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
    if not await claim_store.hand_hold_to_booking(conn, hold.id, booking_id):
        raise DomainError(
            ErrorCode.HOLD_EXPIRED, "The hold has expired; choose a time again.", "input.holdId"
        )
    await conn.execute(update(holds).where(holds.c.id == hold.id).values(booking_id=booking_id))
    return hold.staff_id


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
        booking = await _load_booking(conn, booking_id, for_update=True) if booking_id else None
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
        changed = await _load_booking(conn, booking.id)
        assert changed is not None
        await _record_change(conn, changed, actor, reason)
        await events.record(
            conn,
            events.BookingChanged(booking.id, booking.organization_id),
            *_freed(booking.organization_id, freed),
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
    # The lease is released after the commit (or the rollback): racers wait until
    # the claim is visible.
    async with _leased(lock) as leases, engine.begin() as conn:
        booking = await _load_booking(conn, booking_id, for_update=True) if booking_id else None
        roles = await roles_of(conn, booking, viewer, manage_token) if booking else frozenset()
        if booking is None or not roles:
            raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "input.bookingId")
        fingerprint = hashlib.sha256(
            json.dumps([int(start.timestamp()), None if any_staff else str(staff_id)]).encode()
        ).digest()
        if await _claim_key(
            conn, f"reschedule:{booking.id}", idempotency_key, fingerprint, booking.id
        ):
            return booking  # a replay: the move was made already
        actor = check_reschedule(booking.status, roles)
        service, org = await _service_and_org(conn, booking.service_id, "input.bookingId")
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
            return await claim_store.take_seat(
                conn, chosen, service, start, now, booking_id=booking.id
            )

        # Its old staff member is locked with the new ones, in one sorted order, so
        # two bookings swapping places cannot deadlock.
        await _claim_slot(
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
        moved = await _load_booking(conn, booking.id)
        assert moved is not None
        await _record_change(conn, moved, actor, "rescheduled")
        period_start, period_end = claim_store.period_of(service, start)
        await events.record(
            conn,
            events.BookingChanged(booking.id, booking.organization_id),
            *_freed(booking.organization_id, freed),
            events.AvailabilityChanged(
                booking.organization_id, (moved.staff_id,), None, period_start, period_end
            ),
        )
    return moved


# ---- reads --------------------------------------------------------------------------------


async def readable_booking(
    conn: AsyncConnection,
    booking_id: uuid.UUID,
    viewer: uuid.UUID | None,
    manage_token: str | None,
) -> Booking | None:
    """The booking when the viewer may read it, else None (as if it did not exist)."""
    row = (
        (await conn.execute(select(bookings).where(bookings.c.id == booking_id))).mappings().first()
    )
    if row is None:
        return None
    booking = _booking(row)
    roles = await roles_of(conn, booking, viewer, manage_token, row["manage_token_hash"])
    return booking if roles else None


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
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Page:
    bookings: list[Booking]
    has_next: bool


async def bookings_page(
    conn: AsyncConnection,
    *,
    first: int,
    after: tuple[datetime, uuid.UUID] | None,
    customer_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
    staff_ids: Sequence[uuid.UUID] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: Sequence[BookingStatus] | None = None,
) -> Page:
    """Bookings by start time (then id), keyset-paginated after (start, id)."""
    query = select(bookings)
    if customer_id is not None:
        query = query.where(bookings.c.customer_id == customer_id)
    if organization_id is not None:
        query = query.where(bookings.c.organization_id == organization_id)
    if staff_ids is not None:
        query = query.where(bookings.c.staff_id.in_(list(staff_ids)))
    if start is not None:
        query = query.where(bookings.c.end_at > start)
    if end is not None:
        query = query.where(bookings.c.start_at < end)
    if statuses:
        query = query.where(bookings.c.status.in_([s.value for s in statuses]))
    if after is not None:
        query = query.where(tuple_(bookings.c.start_at, bookings.c.id) > tuple_(*after))
    rows = (
        (await conn.execute(query.order_by(bookings.c.start_at, bookings.c.id).limit(first + 1)))
        .mappings()
        .all()
    )
    found = [_booking(r) for r in rows]
    return Page(found[:first], len(found) > first)


# ---- the passing of time ------------------------------------------------------------------


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
    from domain.booking.tables import claims

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
