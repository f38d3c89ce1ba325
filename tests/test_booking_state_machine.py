"""A stateful, model-based test of the booking domain (contract: "Availability", "Bookings").

Hypothesis drives the domain functions directly (no HTTP) with random sequences of
bookings, holds, hold conversions, replays, cancellations, moves, confirmations and the
passing of (simulated) time, on a fresh organization per example. A Python model of the
bookings and holds predicts every outcome: which call succeeds, with which error code it
fails, whom "any staff" picks. After every step the invariants read the database with
plain SQL and check it against the contract, against the model, and against what
`availability()` offers, recomputed here by brute force from the contract's rules.

A `race` rule sends two createBooking calls at once (asyncio.gather, two connections):
whatever the interleaving, the outcome must be one that some serial order allows.

Users are signed up once per module (argon2 makes sign-up slow); each example gets its own
organization, staff, services and idempotency keys, so examples do not see each other.
The domain is async and the rules are not: each example runs its coroutines on an event
loop of its own, closed (with the engine disposed) in `teardown`.

`test_a_refused_request_does_not_turn_away_a_valid_one` (xfail, strict) pins down, with a
deterministic interleaving, a race bug in the fast-path slot lock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.availability import service as availability
from domain.availability.records import WorkingHours
from domain.booking import service as booking
from domain.booking.records import ACTIVE, Booking, BookingStatus, Hold
from domain.booking.slot_lock import LocalSlotLock
from domain.errors import DomainError, ErrorCode
from domain.users import service as users
from domain.users.tokens import TokenSigner
from infra.database import create_engine

T = TypeVar("T")

ZONE = "Europe/Berlin"
BERLIN = ZoneInfo(ZONE)
# Two days a week after `now`: a Monday and a Tuesday, no clock change near them.
DAYS = (date(2026, 12, 7), date(2026, 12, 8))
# "assess" may be booked at most 7 days ahead: its horizon sweeps through DAYS[1]'s
# morning as the simulated clock advances, so OUTSIDE_BOOKING_WINDOW comes and goes.
START_NOW = datetime(2026, 12, 1, 9, 30, tzinfo=BERLIN).astimezone(UTC)
OPEN, CLOSE = time(9), time(13)
MIN_NOTICE = 60
OTHER_ZONES = ("UTC", "America/New_York", "Asia/Tokyo")
PASSWORD = "a long enough passphrase"


@dataclass(frozen=True)
class Spec:
    """A service as this test defines it."""

    duration: int
    before: int
    after: int
    interval: int
    capacity: int
    max_advance_days: int
    requires_confirmation: bool


SPECS: dict[str, Spec] = {
    "one": Spec(30, 0, 10, 15, 1, 60, False),
    "group": Spec(60, 0, 0, 60, 3, 60, False),
    "assess": Spec(45, 15, 0, 30, 1, 7, True),
}


# ---- the contract's availability rules, by brute force --------------------------------------


@dataclass(frozen=True)
class Rules:
    service_id: uuid.UUID
    duration: int
    before: int
    after: int
    interval: int
    capacity: int
    min_notice: int
    max_advance_days: int


@dataclass(frozen=True)
class Block:
    """An active booking or live hold: one seat that takes a staff member's time."""

    staff: uuid.UUID
    service: uuid.UUID
    start: datetime
    end: datetime
    before: int
    after: int

    @property
    def lo(self) -> datetime:
        return self.start - timedelta(minutes=self.before)

    @property
    def hi(self) -> datetime:
        return self.end + timedelta(minutes=self.after)


def brute_offers(
    rules: Rules,
    hours: Mapping[uuid.UUID, Sequence[tuple[int, time, time]]],
    zones: Mapping[uuid.UUID, str],
    blocks: Sequence[Block],
    day: date,
    now: datetime,
) -> dict[tuple[datetime, uuid.UUID], int]:
    """(start, staff) -> seats left, for starts on the local `day`, rule by rule."""
    out: dict[tuple[datetime, uuid.UUID], int] = {}
    duration = timedelta(minutes=rules.duration)
    for staff, weekly in hours.items():
        tz = ZoneInfo(zones[staff])
        mine = [b for b in blocks if b.staff == staff]
        for weekday, opens, closes in weekly:
            if weekday != day.weekday():
                continue
            # 1. inside one working interval; 2. on the grid from its start.
            t = datetime.combine(day, opens, tz)
            end = datetime.combine(day, closes, tz)
            while t + duration <= end:
                # 4. the booking window.
                in_window = (
                    now + timedelta(minutes=rules.min_notice)
                    <= t
                    <= now + timedelta(days=rules.max_advance_days)
                )
                # 3. no other seat's buffered range overlaps ours, buffered; the same
                # service at the same start shares while seats are left.
                a = t - timedelta(minutes=rules.before)
                b = t + duration + timedelta(minutes=rules.after)
                same = [x for x in mine if x.service == rules.service_id and x.start == t]
                foreign = [x for x in mine if x not in same and x.lo < b and x.hi > a]
                if in_window and not foreign and len(same) < rules.capacity:
                    out[t.astimezone(UTC), staff] = rules.capacity - len(same)
                t += timedelta(minutes=rules.interval)
    return out


def tally(what: str) -> None:
    """Counts an outcome in `--hypothesis-show-statistics` (when Hypothesis runs us)."""
    if currently_in_test_context():
        event(what)


# ---- the people, once per module ------------------------------------------------------------


@dataclass(frozen=True)
class World:
    url: str
    owner: uuid.UUID
    staff_user: uuid.UUID
    customers: dict[str, uuid.UUID]


def run_private(coro: Coroutine[Any, Any, T]) -> T:
    """Runs `coro` on an event loop of its own, and closes that loop cleanly."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        close_loop(loop)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


async def sign_up_people(url: str) -> World:
    engine = create_engine(url, pool_size=1)
    signer = TokenSigner("a test secret that is long enough for HS256 " * 2, "iss", "aud", 60)
    tag = uuid.uuid4().hex[:8]
    try:
        async with engine.begin() as conn:

            async def person(name: str) -> uuid.UUID:
                email = f"{name}-{tag}@example.com"
                session = await users.sign_up(conn, signer, email, PASSWORD, name, None)
                return session.user.id

            owner = await person("owner")
            staff_user = await person("staffer")
            customers = {"ann": await person("ann"), "bob": await person("bob")}
    finally:
        await engine.dispose()
    return World(url, owner, staff_user, customers)


@pytest.fixture(scope="module", autouse=True)
def world(database_url: str) -> Iterator[World]:
    """Hands the database and the people to the state machine's TestCase."""
    made = run_private(sign_up_people(database_url))
    BookingMachine.world = made
    yield made
    BookingMachine.world = None


# ---- the model ------------------------------------------------------------------------------


@dataclass
class MBooking:
    id: uuid.UUID
    reference: str
    service: str
    staff: uuid.UUID
    start: datetime
    persona: str  # "ann", "bob" or "guest"
    status: BookingStatus
    changes: int  # rows of history
    token: str | None  # a guest's manage token


@dataclass
class MHold:
    id: uuid.UUID
    service: str
    staff: uuid.UUID
    start: datetime
    maker: str | None  # None: made anonymously
    expires_at: datetime
    booking: uuid.UUID | None


@dataclass(frozen=True)
class Fingerprint:
    """What makes two createBooking requests the same input."""

    service: str
    start: int
    staff: uuid.UUID | None
    hold: uuid.UUID | None


PERSONAS = st.sampled_from(("ann", "bob", "guest"))
SERVICES = st.sampled_from(tuple(SPECS))
# A start: (day, step on the service's grid from 09:00, shift in minutes). Mostly on the
# grid (the step past the last one ends after closing), now and then off it or before 09:00.
SLOTS = st.tuples(
    st.sampled_from((0, 0, 1)), st.integers(0, 15), st.sampled_from((0, 0, 0, 0, 0, 5, -15))
)
Slot = tuple[int, int, int]
STAFF = st.sampled_from((0, 1, None))  # None: any staff member
KEYS = st.integers(0, 3)
PICK = st.integers(0, 1_000)
ACTORS = st.sampled_from(("own", "owner", "staff", "stranger"))


@settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
class BookingMachine(RuleBasedStateMachine):
    world: ClassVar[World | None] = None

    def __init__(self) -> None:
        super().__init__()
        assert self.world is not None, "the `world` fixture sets up the people"
        self.people = self.world
        self.nonce = uuid.uuid4().hex[:10]
        self.now = START_NOW
        self.lock = LocalSlotLock()
        self.bookings: dict[uuid.UUID, MBooking] = {}
        self.holds: dict[uuid.UUID, MHold] = {}
        self.keys: dict[tuple[str, str], tuple[Fingerprint, uuid.UUID]] = {}
        self.moves: dict[tuple[uuid.UUID, str], tuple[int, uuid.UUID | None]] = {}
        self.replayable: list[tuple[str, booking.BookingRequest, uuid.UUID]] = []
        self.calls = 0
        self._snapshot: tuple[tuple[int, datetime], Snapshot] | None = None
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine | None = None
        try:
            self.engine = create_engine(self.people.url, pool_size=2)
            self.run(self._set_up(self.engine))
        except BaseException:
            self.teardown()
            raise

    async def _set_up(self, engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            org = await users.create_organization(
                conn, self.people.owner, "State Machine Clinic", f"sm-{self.nonce}", ZONE, "EUR"
            )
            self.org_id = org.id
            self.service_ids: dict[str, uuid.UUID] = {}
            for name, spec in SPECS.items():
                created = await availability.create_service(
                    conn,
                    org.id,
                    availability.ServiceDraft(
                        name=name,
                        description=None,
                        duration_minutes=spec.duration,
                        buffer_before_minutes=spec.before,
                        buffer_after_minutes=spec.after,
                        slot_interval_minutes=spec.interval,
                        min_notice_minutes=MIN_NOTICE,
                        max_advance_days=spec.max_advance_days,
                        capacity=spec.capacity,
                        price_amount=0,
                        requires_confirmation=spec.requires_confirmation,
                    ),
                    [],
                )
                self.service_ids[name] = created.id
            self.staff_ids: list[uuid.UUID] = []
            for name, user_id in (("Ada", self.people.staff_user), ("Bo", None)):
                member = await availability.add_staff(
                    conn,
                    org.id,
                    org.time_zone,
                    name,
                    None,
                    None,
                    [*self.service_ids.values()],
                    user_id,
                )
                await availability.set_weekly_schedule(
                    conn, member, [WorkingHours(day, OPEN, CLOSE) for day in range(7)]
                )
                self.staff_ids.append(member.id)
        self.service_names = {v: k for k, v in self.service_ids.items()}
        self.service_rules = {
            name: Rules(
                self.service_ids[name],
                spec.duration,
                spec.before,
                spec.after,
                spec.interval,
                spec.capacity,
                MIN_NOTICE,
                spec.max_advance_days,
            )
            for name, spec in SPECS.items()
        }

    def teardown(self) -> None:
        try:
            if self.engine is not None:
                self.loop.run_until_complete(self.engine.dispose())
        finally:
            close_loop(self.loop)

    # ---- running the domain ---------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def attempt(self, what: str, coro: Coroutine[Any, Any, T]) -> T | ErrorCode:
        """The call's result, or the code of the DomainError it raised (counted in
        `--hypothesis-show-statistics`, to see what the runs exercise)."""
        self.calls += 1
        try:
            result = self.run(coro)
        except DomainError as error:
            tally(f"{what}: {error.code.value}")
            return error.code
        tally(f"{what}: ok")
        return result

    @property
    def db(self) -> AsyncEngine:
        assert self.engine is not None
        return self.engine

    def viewer(self, persona: str | None) -> uuid.UUID | None:
        return None if persona in (None, "guest") else self.people.customers[persona]

    def guest(self) -> booking.Guest:
        return booking.Guest("Gus Guest", f"gus-{self.nonce}@example.com", None)

    def key(self, n: int) -> str:
        return f"{self.nonce}-k{n}"

    # ---- what the model predicts ----------------------------------------------------------

    def model_blocks(self, exclude: uuid.UUID | None = None) -> list[Block]:
        out: list[Block] = []
        for b in self.bookings.values():
            if b.status in ACTIVE and b.id != exclude:
                out.append(self.block(b.service, b.staff, b.start))
        for h in self.holds.values():
            if h.booking is None and h.expires_at > self.now:
                out.append(self.block(h.service, h.staff, h.start))
        return out

    def block(self, service: str, staff: uuid.UUID, start: datetime) -> Block:
        spec = SPECS[service]
        end = start + timedelta(minutes=spec.duration)
        return Block(staff, self.service_ids[service], start, end, spec.before, spec.after)

    def offers_at(
        self,
        service: str,
        start: datetime,
        exclude: uuid.UUID | None = None,
        extra: Sequence[Block] = (),
    ) -> dict[uuid.UUID, int]:
        """Who may take `service` at `start` now, by the model and the contract (without
        booking `exclude`, with the seats `extra`)."""
        hours = {s: [(d, OPEN, CLOSE) for d in range(7)] for s in self.staff_ids}
        zones = dict.fromkeys(self.staff_ids, ZONE)
        day = start.astimezone(BERLIN).date()
        blocks = [*self.model_blocks(exclude), *extra]
        offers = brute_offers(self.service_rules[service], hours, zones, blocks, day, self.now)
        return {s: seats for (t, s), seats in offers.items() if t == start}

    def refusal(self, service: str, start: datetime) -> ErrorCode:
        if start < self.now + timedelta(minutes=MIN_NOTICE) or start > self.now + timedelta(
            days=SPECS[service].max_advance_days
        ):
            return ErrorCode.OUTSIDE_BOOKING_WINDOW
        return ErrorCode.SLOT_UNAVAILABLE

    def load(self, staff: uuid.UUID, start: datetime) -> int:
        """Active bookings of `staff` on the local day of `start`."""
        day = start.astimezone(BERLIN).date()
        return sum(
            1
            for b in self.bookings.values()
            if b.status in ACTIVE and b.staff == staff and b.start.astimezone(BERLIN).date() == day
        )

    def candidates(
        self, service: str, start: datetime, staff: uuid.UUID | None, exclude: uuid.UUID | None
    ) -> dict[uuid.UUID, int]:
        offers = self.offers_at(service, start, exclude)
        return offers if staff is None else {s: n for s, n in offers.items() if s == staff}

    def check_choice(
        self, chosen: uuid.UUID, offered: Mapping[uuid.UUID, int], any_staff: bool, start: datetime
    ) -> None:
        assert chosen in offered, (chosen, offered)
        if any_staff:  # the fairest: fewest active bookings that day
            fewest = min(self.load(s, start) for s in offered)
            assert self.load(chosen, start) == fewest, (chosen, offered, fewest)

    def roles(self, b: MBooking, actor: str, token: bool = True) -> set[str]:
        """What `actor` is to booking `b` (a guest is someone only with the token)."""
        if actor == "own":
            if b.persona == "guest":
                return {"GUEST"} if token else set()
            return {"CUSTOMER"}
        if actor == "owner":
            return {"ADMIN"}
        if actor == "staff":
            return {"STAFF"} if b.staff == self.staff_ids[0] else set()
        return set()

    def as_actor(self, b: MBooking, actor: str) -> tuple[uuid.UUID | None, str | None]:
        """(viewer, manage token) of `actor` for booking `b`."""
        if actor == "own":
            return (None, b.token) if b.persona == "guest" else (self.viewer(b.persona), None)
        if actor == "owner":
            return self.people.owner, None
        if actor == "staff":
            return self.people.staff_user, None
        # A stranger: another customer, or a guest with a wrong token.
        stranger = {"ann": "bob", "bob": "guest", "guest": "ann"}[b.persona]
        return (None, "not-the-token") if stranger == "guest" else (self.viewer(stranger), None)

    def instant(self, service: str, slot: Slot) -> datetime:
        spec = SPECS[service]
        day, step, shift = slot
        steps = (240 - spec.duration) // spec.interval + 2  # one past the last start
        minutes = (step % steps) * spec.interval + shift
        return (datetime.combine(DAYS[day], OPEN, BERLIN) + timedelta(minutes=minutes)).astimezone(
            UTC
        )

    def pick(self, pick: int, items: Sequence[T]) -> T | None:
        if not items:
            tally("skipped: nothing to pick")
            return None
        return items[pick % len(items)]

    def pick_booking(self, pick: int, prefer: frozenset[BookingStatus]) -> MBooking | None:
        """Mostly a booking in one of the `prefer`red states, when there is one."""
        everything = list(self.bookings.values())
        preferred = [b for b in everything if b.status in prefer]
        return self.pick(pick // 2, preferred if preferred and pick % 2 else everything)

    def same_booking(self, got: Booking, b: MBooking) -> None:
        assert got.id == b.id
        assert got.status is b.status, (got.status, b.status)
        assert got.staff_id == b.staff, (got.staff_id, b.staff)
        assert got.start == b.start, (got.start, b.start)
        assert got.reference == b.reference

    # ---- rules ----------------------------------------------------------------------------

    @initialize(
        creates=st.lists(st.tuples(PERSONAS, SERVICES, SLOTS, STAFF), max_size=6),
        holds=st.lists(st.tuples(SERVICES, SLOTS, STAFF), max_size=3),
    )
    def populate(
        self,
        creates: list[tuple[str, str, Slot, int | None]],
        holds: list[tuple[str, Slot, int | None]],
    ) -> None:
        """A day that is already busy: a few bookings and holds to start from."""
        for n, (persona, service, slot, staff) in enumerate(creates):
            self.create_booking(persona, service, slot, staff, 100 + n)
        for service, slot, staff in holds:
            self.hold_slot(None, service, slot, staff, 900)

    @rule(persona=PERSONAS, service=SERVICES, slot=SLOTS, staff=STAFF, key=KEYS)
    def create_booking(
        self, persona: str, service: str, slot: Slot, staff: int | None, key: int
    ) -> None:
        start = self.instant(service, slot)
        staff_id = None if staff is None else self.staff_ids[staff]
        request = booking.BookingRequest(
            service_id=self.service_ids[service],
            start=start,
            staff_id=staff_id,
            any_staff=staff is None,
            idempotency_key=self.key(key),
            hold_id=None,
            hold_id_given=False,
            notes=None,
            guest=self.guest() if persona == "guest" else None,
        )
        self.submit("create", persona, request, None)

    @rule(pick=PICK, zone=st.sampled_from(OTHER_ZONES))
    def replay_booking(self, pick: int, zone: str) -> None:
        """The very same request again, its start spelled in another zone."""
        chosen = self.pick(pick, self.replayable)
        if chosen is None:
            return
        persona, request, booking_id = chosen
        again = replace(request, start=request.start.astimezone(ZoneInfo(zone)))
        before = len(self.bookings)
        self.submit("replay", persona, again, None)
        assert len(self.bookings) == before
        assert self.keys[persona, request.idempotency_key][1] == booking_id

    @rule(
        maker=st.sampled_from(("ann", "bob", None)),
        service=SERVICES,
        slot=SLOTS,
        staff=STAFF,
        seconds=st.sampled_from((60, 300, 900)),
    )
    def hold_slot(
        self,
        maker: str | None,
        service: str,
        slot: Slot,
        staff: int | None,
        seconds: int,
    ) -> None:
        start = self.instant(service, slot)
        staff_id = None if staff is None else self.staff_ids[staff]
        offered = self.candidates(service, start, staff_id, None)
        result = self.attempt(
            "hold",
            booking.hold_slot(
                self.db,
                self.lock,
                booking.Policy(hold_seconds=seconds),
                self.viewer(maker),
                self.service_ids[service],
                start,
                staff_id,
                staff is None,
                self.now,
            ),
        )
        if not offered:
            assert result == self.refusal(service, start), result
            return
        assert isinstance(result, Hold), result
        self.check_choice(result.staff_id, offered, staff is None, start)
        assert result.start == start
        assert result.service_id == self.service_ids[service]
        assert result.expires_at == self.now + timedelta(seconds=seconds)
        assert result.user_id == self.viewer(maker)
        self.holds[result.id] = MHold(
            result.id, service, result.staff_id, start, maker, result.expires_at, None
        )

    @rule(
        pick=PICK,
        who=st.sampled_from(("maker", "ann", "bob", "guest")),
        key=KEYS,
        any_staff=st.booleans(),
    )
    def convert_hold(self, pick: int, who: str, key: int, any_staff: bool) -> None:
        hold = self.pick(pick, list(self.holds.values()))
        if hold is None:
            return
        persona = (hold.maker or "ann") if who == "maker" else who
        request = booking.BookingRequest(
            service_id=self.service_ids[hold.service],
            start=hold.start,
            staff_id=None if any_staff else hold.staff,
            any_staff=any_staff,
            idempotency_key=self.key(key),
            hold_id=hold.id,
            hold_id_given=True,
            notes=None,
            guest=self.guest() if persona == "guest" else None,
        )
        self.submit("convert", persona, request, hold)

    def submit(
        self, what: str, persona: str, request: booking.BookingRequest, hold: MHold | None
    ) -> None:
        """createBooking, predicted by the model, then compared."""
        assert request.service_id is not None
        service = self.service_names[request.service_id]
        fingerprint = self.fingerprint(request)
        offered = (
            {}
            if hold is not None
            else self.candidates(service, request.start, request.staff_id, None)
        )
        result = self.attempt(
            what,
            booking.create_booking(
                self.db, self.lock, booking.Policy(), self.viewer(persona), request, self.now
            ),
        )
        earlier = self.keys.get((persona, request.idempotency_key))
        if earlier is not None:
            if earlier[0] != fingerprint:
                assert result == ErrorCode.IDEMPOTENCY_KEY_REUSED, result
                return
            # A replay: the same booking in its current state, no token, nothing new.
            assert isinstance(result, booking.BookingResult), result
            assert result.manage_token is None
            self.same_booking(result.booking, self.bookings[earlier[1]])
            return
        if hold is not None:
            if hold.maker is not None and hold.maker != persona:
                assert result == ErrorCode.FORBIDDEN, result
                return
            if hold.booking is not None or hold.expires_at <= self.now:
                assert result == ErrorCode.HOLD_EXPIRED, result
                return
            assert isinstance(result, booking.BookingResult), result
            assert result.booking.staff_id == hold.staff
            hold.booking = result.booking.id
        elif not offered:
            assert result == self.refusal(service, request.start), result
            return
        else:
            assert isinstance(result, booking.BookingResult), result
            self.check_choice(result.booking.staff_id, offered, request.any_staff, request.start)
        self.record(persona, request, result)

    def record(
        self, persona: str, request: booking.BookingRequest, result: booking.BookingResult
    ) -> None:
        """A new booking: checked against its request, then added to the model."""
        assert request.service_id is not None
        service = self.service_names[request.service_id]
        made = result.booking
        status = (
            BookingStatus.PENDING_CONFIRMATION
            if SPECS[service].requires_confirmation
            else BookingStatus.CONFIRMED
        )
        assert made.id not in self.bookings
        assert made.status is status, made.status
        assert made.start == request.start
        assert made.end == request.start + timedelta(minutes=SPECS[service].duration)
        assert made.service_id == request.service_id
        assert made.customer_id == self.viewer(persona)
        assert (result.manage_token is not None) == (persona == "guest")
        self.bookings[made.id] = MBooking(
            made.id,
            made.reference,
            service,
            made.staff_id,
            made.start,
            persona,
            status,
            1,
            result.manage_token,
        )
        self.keys[persona, request.idempotency_key] = (self.fingerprint(request), made.id)
        self.replayable.append((persona, request, made.id))

    def fingerprint(self, request: booking.BookingRequest) -> Fingerprint:
        assert request.service_id is not None
        return Fingerprint(
            self.service_names[request.service_id],
            int(request.start.timestamp()),
            None if request.any_staff else request.staff_id,
            request.hold_id,
        )

    @rule(
        first=st.tuples(PERSONAS, SERVICES, SLOTS, STAFF),
        second=st.tuples(PERSONAS, SERVICES, SLOTS, STAFF),
        how=st.sampled_from(("apart", "same slot", "next slot", "twins")),
    )
    def race(
        self,
        first: tuple[str, str, Slot, int | None],
        second: tuple[str, str, Slot, int | None],
        how: str,
    ) -> None:
        """Two createBooking calls at once, on two connections ("under any concurrency"):
        anywhere, for the same slot, for the next start on the grid (overlapping, with
        another fast-path lease: only PostgreSQL can keep them apart), or twins (one
        customer sending one request twice). Whatever interleaving happens, the outcome
        must be one that some serial order allows."""
        self.calls += 1
        if how == "same slot":
            second = (second[0], *first[1:])
        if how == "next slot":
            (day, step, shift) = first[2]
            second = (second[0], first[1], (day, step + 1, shift), first[3])
        keys = [f"{self.nonce}-race{self.calls}-{i}" for i in range(2)]
        if how == "twins":
            second, keys[1] = first, keys[0]
        requests: list[tuple[str, booking.BookingRequest]] = []
        for (persona, service, slot, staff), key in zip((first, second), keys, strict=True):
            staff_id = None if staff is None else self.staff_ids[staff]
            requests.append(
                (
                    persona,
                    booking.BookingRequest(
                        service_id=self.service_ids[service],
                        start=self.instant(service, slot),
                        staff_id=staff_id,
                        any_staff=staff is None,
                        idempotency_key=key,
                        hold_id=None,
                        hold_id_given=False,
                        notes=None,
                        guest=self.guest() if persona == "guest" else None,
                    ),
                )
            )
        if how == "twins":  # the same instant, spelled in another zone
            twin = requests[1][1]
            requests[1] = (requests[1][0], replace(twin, start=twin.start.astimezone(BERLIN)))

        async def outcome(persona: str, request: booking.BookingRequest) -> Any:
            try:
                return await booking.create_booking(
                    self.db, self.lock, booking.Policy(), self.viewer(persona), request, self.now
                )
            except DomainError as error:
                return error.code

        async def both() -> list[Any]:
            return await asyncio.gather(
                *(outcome(p, r) for p, r in requests), return_exceptions=True
            )

        results = self.run(both())
        for r in results:
            if isinstance(r, BaseException):
                raise r
            tally(f"race ({how}): {r.value if isinstance(r, ErrorCode) else 'ok'}")
        if how == "twins":
            # One key makes one booking: both get it, or neither does.
            persona, request = requests[0]
            service = self.service_names[self.service_ids[first[1]]]
            a, b = results
            if not isinstance(a, booking.BookingResult) or not isinstance(b, booking.BookingResult):
                # Neither booked, and for the same reason. (Before 900147a the second copy
                # could meet the first's fast-path lease and answer SLOT_UNAVAILABLE to a
                # request beyond the booking horizon.)
                assert a == b == self.refusal(service, request.start), results
                return
            assert a.booking.id == b.booking.id, results
            assert a.manage_token is None or b.manage_token is None, results
            offered = self.candidates(service, request.start, request.staff_id, None)
            self.check_choice(a.booking.staff_id, offered, request.any_staff, request.start)
            self.record(persona, request, a if a.manage_token else b)
            return
        for (_, request), r in zip(requests, results, strict=True):
            if not isinstance(r, booking.BookingResult):
                assert request.service_id is not None
                service = self.service_names[request.service_id]
                assert r == self.refusal(service, request.start), (requests, results)
        wins = [
            (request, r)
            for (_, request), r in zip(requests, results, strict=True)
            if isinstance(r, booking.BookingResult)
        ]

        # Serializable: in some order, each winner was offered when its turn came.
        def fits(order: Sequence[tuple[booking.BookingRequest, booking.BookingResult]]) -> bool:
            taken: list[Block] = []
            for request, r in order:
                service = self.service_names[r.booking.service_id]
                offered = self.offers_at(service, request.start, extra=taken)
                if r.booking.staff_id not in offered:
                    return False
                taken.append(self.block(service, r.booking.staff_id, request.start))
            return True

        assert fits(wins) or fits(wins[::-1]), (requests, results)
        for (persona, request), r in zip(requests, results, strict=True):
            if isinstance(r, booking.BookingResult):
                self.record(persona, request, r)

    @rule(
        pick=PICK,
        actor=ACTORS,
        to=st.sampled_from(
            (BookingStatus.CANCELLED, BookingStatus.CONFIRMED, BookingStatus.DECLINED)
        ),
    )
    def change_status(self, pick: int, actor: str, to: BookingStatus) -> None:
        """cancelBooking, confirmBooking or declineBooking."""
        if to is BookingStatus.CANCELLED:
            b = self.pick_booking(pick, ACTIVE)
            if b is None:
                return
            viewer, token = self.as_actor(b, actor)
            result = self.attempt(
                "cancel",
                booking.cancel_booking(self.db, viewer, b.id, "changed my mind", token, self.now),
            )
            self.expect_transition(b, actor, result, to)
            return
        b = self.pick_booking(pick, frozenset({BookingStatus.PENDING_CONFIRMATION}))
        if b is None:
            return
        viewer, _ = self.as_actor(b, actor)  # no manage token: a guest is no one here
        if to is BookingStatus.CONFIRMED:
            result = self.attempt(
                "confirm", booking.confirm_booking(self.db, viewer, b.id, self.now)
            )
        else:
            result = self.attempt(
                "decline", booking.decline_booking(self.db, viewer, b.id, "no", self.now)
            )
        self.expect_transition(b, actor, result, to, token=False)

    def expect_transition(
        self,
        b: MBooking,
        actor: str,
        result: Booking | ErrorCode,
        target: BookingStatus,
        token: bool = True,
    ) -> None:
        roles = self.roles(b, actor, token)
        allowed = {
            BookingStatus.CANCELLED: ({"CUSTOMER", "GUEST", "ADMIN"}, ACTIVE),
            BookingStatus.CONFIRMED: ({"STAFF", "ADMIN"}, {BookingStatus.PENDING_CONFIRMATION}),
            BookingStatus.DECLINED: ({"STAFF", "ADMIN"}, {BookingStatus.PENDING_CONFIRMATION}),
        }
        who, source = allowed[target]
        if not roles:
            assert result == ErrorCode.NOT_FOUND, result
        elif b.status not in source:
            assert result == ErrorCode.NOT_CANCELLABLE, result
        elif not roles & who:
            assert result == ErrorCode.FORBIDDEN, result
        else:
            assert isinstance(result, Booking), result
            b.status = target
            b.changes += 1
            self.same_booking(result, b)

    @rule(pick=PICK, actor=ACTORS, slot=SLOTS, staff=STAFF, key=st.integers(0, 2))
    def reschedule_booking(
        self, pick: int, actor: str, slot: Slot, staff: int | None, key: int
    ) -> None:
        b = self.pick_booking(pick, ACTIVE)
        if b is None:
            return
        start = self.instant(b.service, slot)
        staff_id = None if staff is None else self.staff_ids[staff]
        viewer, token = self.as_actor(b, actor)
        offered = self.candidates(b.service, start, staff_id, b.id)
        result = self.attempt(
            "reschedule",
            booking.reschedule_booking(
                self.db,
                self.lock,
                viewer,
                b.id,
                start,
                staff_id,
                staff is None,
                f"{self.nonce}-r{key}",
                token,
                self.now,
            ),
        )
        roles = self.roles(b, actor)
        fingerprint = (int(start.timestamp()), staff_id)
        earlier = self.moves.get((b.id, f"r{key}"))
        if not roles:
            assert result == ErrorCode.NOT_FOUND, result
        elif earlier is not None and earlier != fingerprint:
            assert result == ErrorCode.IDEMPOTENCY_KEY_REUSED, result
        elif earlier is not None:
            assert isinstance(result, Booking), result  # a replay: nothing moves
            self.same_booking(result, b)
        elif b.status not in ACTIVE:
            assert result == ErrorCode.NOT_CANCELLABLE, result
        elif not roles & {"CUSTOMER", "GUEST", "ADMIN"}:
            assert result == ErrorCode.FORBIDDEN, result
        elif not offered:
            assert result == self.refusal(b.service, start), result
        else:
            assert isinstance(result, Booking), result
            assert result.staff_id in offered, (result.staff_id, offered)
            b.staff, b.start = result.staff_id, start
            b.changes += 1
            self.same_booking(result, b)
            assert result.end == start + timedelta(minutes=SPECS[b.service].duration)
            self.moves[b.id, f"r{key}"] = fingerprint

    @rule(seconds=st.sampled_from((30, 60, 240, 300, 600, 1800)), tidy=st.booleans())
    def advance_time(self, seconds: int, tidy: bool) -> None:
        """Time passes (holds lapse, the booking horizon moves); maybe the periodic job
        clears the lapsed holds' claims."""
        self.now += timedelta(seconds=seconds)
        if tidy:
            self.calls += 1
            self.run(booking.clear_expired_holds(self.db, self.now))

    # ---- invariants, from plain SQL -------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The database as plain rows (and what availability() offers), once per step."""
        stamp = (self.calls, self.now)
        if self._snapshot is None or self._snapshot[0] != stamp:
            self._snapshot = (stamp, self.run(self._read()))
        return self._snapshot[1]

    async def _read(self) -> Snapshot:
        org = {"org": self.org_id}
        async with self.db.connect() as conn:

            async def rows(sql: str) -> list[dict[str, Any]]:
                result = await conn.execute(text(sql), org)
                return [dict(r) for r in result.mappings()]

            services = await rows(
                "SELECT id, duration_minutes, buffer_before_minutes, buffer_after_minutes,"
                " slot_interval_minutes, capacity, min_notice_minutes, max_advance_days"
                " FROM services WHERE organization_id = :org"
            )
            staff = await rows("SELECT id, time_zone FROM staff WHERE organization_id = :org")
            hours = await rows(
                "SELECT w.staff_id, w.weekday, w.start_time, w.end_time FROM working_hours w"
                " JOIN staff s ON s.id = w.staff_id WHERE s.organization_id = :org"
            )
            bookings = await rows(
                "SELECT b.id, b.reference, b.service_id, b.staff_id, b.customer_id,"
                " b.guest_email, b.start_at, b.end_at, b.status,"
                " (SELECT count(*) FROM booking_changes c WHERE c.booking_id = b.id) AS changes"
                " FROM bookings b WHERE b.organization_id = :org"
            )
            holds = await rows(
                "SELECT h.id, h.service_id, h.staff_id, h.user_id, h.start_at, h.end_at,"
                " h.expires_at, h.booking_id FROM holds h"
                " JOIN services s ON s.id = h.service_id WHERE s.organization_id = :org"
            )
            claims = await rows(
                "SELECT c.id, c.resource_id, c.service_id, c.start_at, c.end_at,"
                " lower(c.period) AS lo, upper(c.period) AS hi,"
                " lower_inc(c.period) AS lo_inc, upper_inc(c.period) AS hi_inc,"
                " c.session_key, c.seat, c.booking_id, c.hold_id, c.expires_at FROM claims c"
                " JOIN staff s ON s.id = c.resource_id WHERE s.organization_id = :org"
            )
            # What customers are shown: the function under test, with the live claims.
            records = await availability.services_by_id(conn, list(self.service_ids.values()))
            offered: dict[uuid.UUID, dict[datetime, tuple[set[uuid.UUID], int]]] = {}
            for service_id, record in records.items():
                offer = await availability.availability(
                    conn,
                    record,
                    datetime.combine(DAYS[0], time(0), BERLIN),
                    datetime.combine(DAYS[-1] + timedelta(days=1), time(0), BERLIN),
                    None,
                    self.now,
                    booking.claims_loader(self.now),
                )
                offered[service_id] = {
                    datetime.fromtimestamp(s.start, UTC): (
                        {uuid.UUID(i) for i in s.staff_ids},
                        s.remaining_capacity,
                    )
                    for s in offer.slots
                }
        return Snapshot(services, staff, hours, bookings, holds, claims, offered)

    def service_rows(self) -> dict[uuid.UUID, dict[str, Any]]:
        return {r["id"]: r for r in self.snapshot().services}

    def claim_blocks(self, live_only: bool) -> list[Block]:
        services = self.service_rows()
        return [
            Block(
                c["resource_id"],
                c["service_id"],
                c["start_at"],
                c["end_at"],
                services[c["service_id"]]["buffer_before_minutes"],
                services[c["service_id"]]["buffer_after_minutes"],
            )
            for c in self.snapshot().claims
            if not live_only or c["expires_at"] is None or c["expires_at"] > self.now
        ]

    @invariant()
    def claims_never_overlap(self) -> None:
        """No two claims of a resource overlap (buffers included) unless they are seats of
        one session; a session has at most `capacity` seats."""
        snap = self.snapshot()
        services = self.service_rows()
        for c in snap.claims:
            s = services[c["service_id"]]
            lo = c["start_at"] - timedelta(minutes=s["buffer_before_minutes"])
            hi = c["end_at"] + timedelta(minutes=s["buffer_after_minutes"])
            assert (c["lo"], c["hi"], c["lo_inc"], c["hi_inc"]) == (lo, hi, True, False), c
            assert c["session_key"] == f"{c['service_id']}@{int(c['start_at'].timestamp())}"
            assert 1 <= c["seat"] <= s["capacity"], c
        for i, a in enumerate(snap.claims):
            for b in snap.claims[i + 1 :]:
                if a["resource_id"] == b["resource_id"] and a["session_key"] != b["session_key"]:
                    assert not (a["lo"] < b["hi"] and b["lo"] < a["hi"]), (a, b)
        sessions = Counter((c["resource_id"], c["session_key"]) for c in snap.claims)
        for c in snap.claims:
            count = sessions[c["resource_id"], c["session_key"]]
            assert count <= services[c["service_id"]]["capacity"], (c, count)

    @invariant()
    def active_bookings_within_capacity(self) -> None:
        """From the bookings and holds themselves: active bookings and live holds of one
        staff member overlap only as seats of one session, at most `capacity` of them."""
        services = self.service_rows()
        blocks = self.record_blocks()
        for i, a in enumerate(blocks):
            for b in blocks[i + 1 :]:
                if a.staff == b.staff and a.lo < b.hi and b.lo < a.hi:
                    assert (a.service, a.start) == (b.service, b.start), (a, b)
        seats = Counter((b.staff, b.service, b.start) for b in blocks)
        for (_, service, _), n in seats.items():
            assert n <= services[service]["capacity"], seats

    def record_blocks(self) -> list[Block]:
        snap = self.snapshot()
        services = self.service_rows()

        def block(r: dict[str, Any]) -> Block:
            s = services[r["service_id"]]
            return Block(
                r["staff_id"],
                r["service_id"],
                r["start_at"],
                r["end_at"],
                s["buffer_before_minutes"],
                s["buffer_after_minutes"],
            )

        active = {s.value for s in ACTIVE}
        return [block(r) for r in snap.bookings if r["status"] in active] + [
            block(h) for h in snap.holds if h["booking_id"] is None and h["expires_at"] > self.now
        ]

    @invariant()
    def claims_mirror_bookings_and_holds(self) -> None:
        """An active booking has exactly one claim, any other none; a claim belongs to an
        active booking or an unconverted hold; a live hold has exactly one claim."""
        snap = self.snapshot()
        active = {s.value for s in ACTIVE}
        bookings = {r["id"]: r for r in snap.bookings}
        holds = {h["id"]: h for h in snap.holds}
        per_booking = Counter(c["booking_id"] for c in snap.claims if c["booking_id"])
        per_hold = Counter(c["hold_id"] for c in snap.claims if c["hold_id"])
        for r in snap.bookings:
            assert per_booking[r["id"]] == (1 if r["status"] in active else 0), r
        for h in snap.holds:
            if h["booking_id"] is not None:
                assert per_hold[h["id"]] == 0, h
            elif h["expires_at"] > self.now:
                assert per_hold[h["id"]] == 1, h
            else:
                assert per_hold[h["id"]] <= 1, h
        for c in snap.claims:
            assert (c["booking_id"] is None) != (c["hold_id"] is None), c
            owner = bookings.get(c["booking_id"]) or holds.get(c["hold_id"])
            assert owner is not None, c
            assert owner["staff_id"] == c["resource_id"], (owner, c)
            assert owner["service_id"] == c["service_id"], (owner, c)
            assert (owner["start_at"], owner["end_at"]) == (c["start_at"], c["end_at"]), c
            if c["booking_id"] is not None:
                assert owner["status"] in active, (owner, c)
                assert c["expires_at"] is None, c
            else:
                assert owner["booking_id"] is None, (owner, c)
                assert c["expires_at"] == owner["expires_at"], (owner, c)
        # The live claims are exactly the seats of active bookings and live holds.
        assert Counter(self.claim_blocks(live_only=True)) == Counter(self.record_blocks())

    @invariant()
    def availability_agrees_with_the_database(self) -> None:
        """What availability() offers is what the contract's rules give for the live claims
        in the database, start by start, staff by staff, seat by seat."""
        snap = self.snapshot()
        zones = {r["id"]: r["time_zone"] for r in snap.staff}
        hours: dict[uuid.UUID, list[tuple[int, time, time]]] = {s: [] for s in zones}
        for h in snap.hours:
            hours[h["staff_id"]].append((h["weekday"], h["start_time"], h["end_time"]))
        live = self.claim_blocks(live_only=True)
        for s in snap.services:
            rules = Rules(
                s["id"],
                s["duration_minutes"],
                s["buffer_before_minutes"],
                s["buffer_after_minutes"],
                s["slot_interval_minutes"],
                s["capacity"],
                s["min_notice_minutes"],
                s["max_advance_days"],
            )
            expected: dict[datetime, tuple[set[uuid.UUID], int]] = {}
            for day in DAYS:
                for (t, staff), seats in brute_offers(
                    rules, hours, zones, live, day, self.now
                ).items():
                    who, total = expected.get(t, (set(), 0))
                    expected[t] = (who | {staff}, total + seats)
            got = snap.offered[s["id"]]
            name = self.service_names[s["id"]]
            assert got == expected, (name, self.now, diff(got, expected))

    @invariant()
    def model_agrees_with_the_database(self) -> None:
        snap = self.snapshot()
        got = {
            r["id"]: (
                r["reference"],
                self.service_names[r["service_id"]],
                r["staff_id"],
                r["start_at"],
                r["status"],
                r["customer_id"],
                r["guest_email"] is not None,
                r["changes"],
            )
            for r in snap.bookings
        }
        want = {
            b.id: (
                b.reference,
                b.service,
                b.staff,
                b.start,
                b.status.value,
                self.viewer(b.persona),
                b.persona == "guest",
                b.changes,
            )
            for b in self.bookings.values()
        }
        assert got == want, diff(got, want)
        holds = {
            h["id"]: (h["staff_id"], h["start_at"], h["expires_at"], h["booking_id"])
            for h in snap.holds
        }
        model = {h.id: (h.staff, h.start, h.expires_at, h.booking) for h in self.holds.values()}
        assert holds == model, diff(holds, model)


@dataclass(frozen=True)
class Snapshot:
    services: list[dict[str, Any]]
    staff: list[dict[str, Any]]
    hours: list[dict[str, Any]]
    bookings: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    offered: dict[uuid.UUID, dict[datetime, tuple[set[uuid.UUID], int]]]


def diff(got: Mapping[Any, Any], want: Mapping[Any, Any]) -> dict[str, Any]:
    """The keys on which two mappings disagree, for a readable failure."""
    return {
        "only_got": {k: got[k] for k in got.keys() - want.keys()},
        "only_want": {k: want[k] for k in want.keys() - got.keys()},
        "differ": {k: (got[k], want[k]) for k in got.keys() & want.keys() if got[k] != want[k]},
    }


TestBookingStateMachine = BookingMachine.TestCase


# ---- a race found by the machine, made deterministic ----------------------------------------


class ParkingLock(LocalSlotLock):
    """The fast-path lock, pausing the first request to take the lease `key` (while
    `armed`) until `go` is set: a request paused at the worst moment, on purpose."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.armed = True
        self.parked = asyncio.Event()
        self.go = asyncio.Event()

    async def acquire(self, key: str) -> str | None:
        token = await super().acquire(key)
        if token is not None and key == self.key and self.armed:
            self.armed = False
            self.parked.set()
            await self.go.wait()
        return token


def test_a_refused_request_does_not_turn_away_a_valid_one(world: World) -> None:
    """Staff member A has a "one" booking at 09:15 (blocked until 09:55 with its buffer).
    At the same moment Ann asks for "assess" at 10:00 with A, whose 15-minute buffer before
    collides with it, and Bob for "one" at 10:00 with A, which is free. Ann is refused
    whatever happens; Bob's slot is free and stays free, so "createBooking checks the rules
    at the moment it commits" says Bob gets it."""
    business = BookingMachine()
    try:
        staff = business.staff_ids[0]
        business.create_booking("guest", "one", (0, 1, 0), 0, 0)  # 09:15, checked
        start = datetime.combine(DAYS[0], time(10), BERLIN).astimezone(UTC)
        assert staff not in business.offers_at("assess", start)
        assert staff in business.offers_at("one", start)
        lock = ParkingLock(f"slot:{staff}:{int(start.timestamp())}")

        async def outcome(persona: str, service: str) -> booking.BookingResult | ErrorCode:
            request = booking.BookingRequest(
                business.service_ids[service],
                start,
                staff,
                False,
                f"{business.nonce}-{persona}",
                None,
                False,
                None,
                None,
            )
            try:
                return await booking.create_booking(
                    business.db,
                    lock,
                    booking.Policy(),
                    business.viewer(persona),
                    request,
                    business.now,
                )
            except DomainError as error:
                return error.code

        async def scenario() -> tuple[Any, Any]:
            ann = asyncio.ensure_future(outcome("ann", "assess"))
            parked = asyncio.ensure_future(lock.parked.wait())
            await asyncio.wait({ann, parked}, return_when=asyncio.FIRST_COMPLETED)
            lock.armed = False  # Ann is parked holding the lease, or done without it
            bob = await outcome("bob", "one")
            lock.go.set()
            parked.cancel()
            return await ann, bob

        ann, bob = business.run(scenario())
        assert ann == ErrorCode.SLOT_UNAVAILABLE
        assert isinstance(bob, booking.BookingResult), bob
        assert bob.booking.staff_id == staff
    finally:
        business.teardown()
