"""A stateful test of the payment saga (issue 10): money and bookings stay consistent
whatever the order of webhooks (duplicated, reordered, old failures after a success),
`confirmPayment`, expiries, cancellations, declines, reconciliation and the settler.

Hypothesis drives the domain directly (no HTTP in front of it): `saga.book`,
`saga.confirm_payment`, `saga.apply_event` with events verified by the real
`StripeProvider.verify_event` (signed as Stripe signs them), `saga.settle`,
`reconciliation.reconcile`, the outbox consumer's `settle_changed` fed by the real outbox
reader (`infra.outbox.drain`), booking cancellation / confirmation / decline and the expiry
sweep `expire_unpaid`. The provider is the real `StripeProvider` talking to the Stripe
stand-in (tests/stripe_standin.py), served in each example's own event loop; the test
moves the intents as a customer's browser and the card networks would (`succeed`, `fail`,
`processing`) and keeps every event Stripe would send, for any change (ours too: a
cancellation, a refund), in a pool that a rule delivers from at random: duplicates,
reordering and stale news come for free. Stripe also fails now and then (500s the
retries absorb, a call that fails for good, an answer lost after Stripe did the work),
and a `race` rule runs two steps at once (a webhook and a cancellation, the sweep and
confirmPayment, ...).

Time is simulated (`now` is passed to every domain call), an hour ahead of the wall clock,
so that rows PostgreSQL stamps with its own now() (payments.created_at, booking history)
are always in the simulated past, and the reconciliation's grace period is no obstacle.

Invariants, read with plain SQL after every step:
  - a booking kept (CONFIRMED, PENDING_CONFIRMATION, COMPLETED) has its payment SUCCEEDED,
    nothing refunded, and Stripe says the intent succeeded;
  - a booking waiting for its payment has an open payment; a payment confirms it only
    before its deadline, and only the deadline expires it; one seat per slot;
  - we never believe in money Stripe does not have (PAID => succeeded at the stand-in) and
    never record a refund Stripe did not make; refundedAmount <= amount, the status follows
    the refunded amount, at most one refund per payment at Stripe;
  - a refund decided has exactly the amount the policy owes (see `refund_due`);
  - an intent cancelled at Stripe belongs to a booking that ended; money is never given
    back for a booking that is kept;
  - payments only move forward (`RANK`), refunds only add up and are decided once, ended
    bookings stay ended, history only grows.
And once the reconciliation and the settler have run to a fixpoint (the rule
`everything_settles`, and every example's end: all deadlines passed, the reconciliation
first, then the sweep):
  - no booking waits for a payment Stripe has taken;
  - a succeeded payment belongs to a kept booking, or was refunded exactly what is due:
    the full amount, except a customer's own late cancellation of a booking they had
    paid for, which the policy (domain/payments/policy.py) refunds by percentage; the
    money refunded at Stripe equals refundedAmount; no refund is left to retry;
  - an ended booking's unpaid intent is cancelled at Stripe, its payment CANCELED.

Two bugs it found are pinned by deterministic tests at the end (they failed before the
fix): a payment arriving after the customer cancelled the unpaid booking was refunded by
the late-cancellation policy, and a refund decided as nothing was decided again later.

Users are signed up once per module on a database of the module's own; each example has
its own organization (the tables of bookings and payments are emptied first: the
reconciliation looks at the whole database), event loop, Stripe stand-in, provider and
outbox consumer.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.availability import service as availability
from domain.availability.records import WorkingHours
from domain.booking import service as booking
from domain.booking.records import Actor, Booking, BookingStatus
from domain.booking.slot_lock import LocalSlotLock
from domain.booking.status import TRANSITIONS
from domain.errors import DomainError, ErrorCode
from domain.payments import reconciliation, saga
from domain.payments.policy import CUSTOMERS
from domain.payments.provider import ProviderUnavailable
from domain.payments.records import OPEN, PAID, PaymentStatus
from domain.payments.stripe_provider import TRIES, StripeProvider
from domain.users import service as users
from domain.users.tokens import TokenSigner
from infra import outbox
from infra.database import create_engine
from infra.resilience import Breaker
from tests.processes import own_database
from tests.stripe_standin import JSON, StripeStandIn, compact
from tests.test_booking_state_machine import close_loop, tally

T = TypeVar("T")

WEBHOOK_SECRET = "whsec_saga_machine"
PRICE = 4999  # odd, so a percentage is rounded down
FREE_CANCELLATION_HOURS = 7 * 24
PASSWORD = "a long enough passphrase"
MAX_BOOKINGS = 5
# Four slots of one staff member: two on a day 3 days ahead (a customer's cancellation is
# late: within FREE_CANCELLATION_HOURS of the start) and two on a day 20 days ahead (in
# time), whatever the hour the test runs at.
SLOT_DAYS = (3, 3, 20, 20)
SLOT_HOURS = (10, 12, 10, 12)
KEPT = frozenset(
    {BookingStatus.CONFIRMED, BookingStatus.PENDING_CONFIRMATION, BookingStatus.COMPLETED}
)
ENDED = frozenset({BookingStatus.CANCELLED, BookingStatus.DECLINED, BookingStatus.EXPIRED})
# A payment's status only moves up this order (any move between the open states is
# allowed: newer news about the customer's attempts).
RANK = {
    PaymentStatus.REQUIRES_PAYMENT: 0,
    PaymentStatus.PROCESSING: 0,
    PaymentStatus.FAILED: 0,
    PaymentStatus.CANCELED: 1,
    PaymentStatus.SUCCEEDED: 2,
    PaymentStatus.PARTIALLY_REFUNDED: 3,
    PaymentStatus.REFUNDED: 4,
}
RACERS = (
    "webhook",
    "confirmPayment",
    "customer cancels",
    "business cancels",
    "sweep",
    "settle",
    "reconcile",
)
# Stripe's event for each state of an intent (requires_payment_method: a declined card
# when it carries last_payment_error, else a new intent).
EVENT_TYPES = {
    "succeeded": "payment_intent.succeeded",
    "processing": "payment_intent.processing",
    "canceled": "payment_intent.canceled",
}


class LossyStripeProvider(StripeProvider):
    """The real provider, except that the next `lose` answers are lost on their way back:
    Stripe did the work (made the intent, cancelled it, refunded), and we hear nothing, as
    after a timeout on every try."""

    lose = 0

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        answer = await super()._call(what, call)
        if self.lose > 0:
            self.lose -= 1
            raise ProviderUnavailable(f"Stripe {what}: the answer was lost (test)")
        return answer


# ---- the people and the database, once per module -------------------------------------------


@dataclass(frozen=True)
class World:
    url: str
    owner: uuid.UUID
    customer: uuid.UUID


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

            return World(url, await person("owner"), await person("payer"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", autouse=True)
def world() -> Iterator[World]:
    """A migrated database of the module's own (no app process drains its outbox or runs
    its jobs), and the people; handed to the state machine's TestCase."""
    loop = asyncio.new_event_loop()
    database = own_database()
    try:
        url = loop.run_until_complete(database.__aenter__())
        try:
            made = loop.run_until_complete(sign_up_people(url))
            PaymentSagaMachine.world = made
            yield made
        finally:
            PaymentSagaMachine.world = None
            loop.run_until_complete(database.__aexit__(None, None, None))
    finally:
        close_loop(loop)


# ---- the model ------------------------------------------------------------------------------


@dataclass
class PaidBooking:
    """A paid booking the machine made, and what the test did to it."""

    id: uuid.UUID
    slot: int
    start: datetime
    persona: str  # "customer" or "guest"
    service: str  # "instant" (CONFIRMED once paid) or "approval" (PENDING_CONFIRMATION)
    token: str | None  # the guest's manage token
    request: booking.BookingRequest
    intent_id: str
    expires_at: datetime
    # Set when the test ends the booking: who, and the status it had then.
    ended_by: str | None = None  # "customer", "business" or "decline"
    ended_from: BookingStatus | None = None

    def __repr__(self) -> str:  # short, for Hypothesis's reproduction steps
        return f"PaidBooking(slot={self.slot}, {self.persona}, {self.service})"


@dataclass(frozen=True)
class Row:
    """One booking and its payment (and refund) as the database has them."""

    booking_id: uuid.UUID
    status: BookingStatus
    expires_at: datetime | None
    payment_status: PaymentStatus
    amount: int
    refunded: int
    intent_id: str | None
    refund_amount: int | None
    refund_status: str | None
    history: tuple[tuple[str, str], ...]  # (status, actor), oldest first


@dataclass
class Stripe:
    """What Stripe knows of one intent, as last seen by the machine."""

    status: str
    error: str | None
    refunded: int


@dataclass
class Pool:
    """Every event Stripe sent so far, delivered or not (a delivery may repeat)."""

    events: list[JSON] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)


def slot_starts(today: datetime) -> list[datetime]:
    """The slots' starts, counted from `today` once per example (the simulated clock may
    pass midnight)."""
    return [
        datetime.combine((today + timedelta(days=days)).date(), time(hour), UTC)
        for days, hour in zip(SLOT_DAYS, SLOT_HOURS, strict=True)
    ]


@settings(
    max_examples=40,
    stateful_step_count=35,
    deadline=None,
    # No "explain" phase: it reruns a failure dozens of times, a minute or more here.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
class PaymentSagaMachine(RuleBasedStateMachine):
    world: ClassVar[World | None] = None

    bookings = Bundle("bookings")

    def __init__(self) -> None:
        super().__init__()
        assert self.world is not None, "the `world` fixture sets up the database and people"
        self.people = self.world
        self.nonce = uuid.uuid4().hex[:10]
        # An hour ahead of the wall clock: see the module's docstring.
        self.now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        self.slots = slot_starts(datetime.now(UTC))
        self.late_percent = 0
        self.lock = LocalSlotLock()
        self.paid: dict[uuid.UUID, PaidBooking] = {}
        self.stripe_seen: dict[str, Stripe] = {}
        self.pool = Pool()
        self.keys = 0
        self.last_rows: dict[uuid.UUID, Row] = {}
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine | None = None
        self.provider: LossyStripeProvider | None = None
        self.reader: asyncpg.Connection | None = None
        self._standing: Any = None
        self.stand_in: StripeStandIn | None = None
        self.consumer: outbox.Consumer | None = None
        try:
            self.engine = create_engine(self.people.url, pool_size=4)  # races: two at once
            self.loop.run_until_complete(self._set_up(self.engine))
        except BaseException:
            self._close()
            raise

    async def _set_up(self, engine: AsyncEngine) -> None:
        self._standing = StripeStandIn.running()
        self.stand_in = await self._standing.__aenter__()
        self.provider = LossyStripeProvider(
            "sk_test_saga_machine",
            WEBHOOK_SECRET,
            self.stand_in.base_url,
            call_seconds=5.0,
            # Never open: an outage the test makes is a few failed calls, not 30 s of them.
            breaker=Breaker("Stripe (saga machine)", fail_max=1_000_000),
        )
        async with engine.begin() as conn:
            org = await users.create_organization(
                conn, self.people.owner, "Saga Clinic", f"saga-{self.nonce}", "UTC", "EUR"
            )
            self.org_id = org.id
            staff = await availability.add_staff(conn, org.id, "UTC", "Ada", None, None, [], None)
            await availability.set_weekly_schedule(
                conn, staff, [WorkingHours(day, time(9), time(17)) for day in range(7)]
            )
            self.staff_id = staff.id
            self.service_ids: dict[str, uuid.UUID] = {}
            for name in ("instant", "approval"):
                made = await availability.create_service(
                    conn,
                    org.id,
                    availability.ServiceDraft(
                        name=name,
                        description=None,
                        duration_minutes=60,
                        buffer_before_minutes=0,
                        buffer_after_minutes=0,
                        slot_interval_minutes=60,
                        min_notice_minutes=60,
                        max_advance_days=60,
                        capacity=1,
                        price_amount=PRICE,
                        requires_confirmation=name == "approval",
                    ),
                    [staff.id],
                )
                self.service_ids[name] = made.id
        self.reader = await asyncpg.connect(self.people.url)
        # What earlier examples left: the reconciliation looks at every open payment of
        # the database, and their intents were at another stand-in.
        await self.reader.execute(
            "TRUNCATE bookings, payment_events, outbox, outbox_consumers CASCADE"
        )
        self.consumer = outbox.Consumer(f"payments-{self.nonce}", self._settle_rows)
        await outbox.register(self.reader, self.consumer)

    async def _settle_rows(self, rows: list[outbox.Row]) -> None:
        await reconciliation.settle_changed(self.db, self.stripe_provider, rows, self.now)

    def teardown(self) -> None:
        try:
            # Every example ends settled (as it stands: the rule everything_settles), here
            # with every deadline passed, the reconciliation coming first (payments
            # Stripe took meanwhile arrive late), then the sweep. Not after a failed step
            # (teardown runs in Hypothesis's `finally`): its error is the one to report.
            if sys.exc_info()[0] is None and self.stand_in is not None:
                self.now += timedelta(hours=1)
                self.everything_settles(deliver_rest=False)
                self.run_sweep()
                self.money_and_bookings_agree()
                self.everything_settles(deliver_rest=False)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self.loop.run_until_complete(self._dispose())
        finally:
            close_loop(self.loop)

    async def _dispose(self) -> None:
        try:
            if self.reader is not None:
                if self.consumer is not None:
                    await self.reader.execute(
                        "DELETE FROM outbox_consumers WHERE name = $1", self.consumer.name
                    )
                await self.reader.close()
            if self.provider is not None:
                await self.provider.close()
        finally:
            try:
                if self._standing is not None:
                    await self._standing.__aexit__(None, None, None)
            finally:
                if self.engine is not None:
                    await self.engine.dispose()

    # ---- running the domain ---------------------------------------------------------------

    @property
    def db(self) -> AsyncEngine:
        assert self.engine is not None
        return self.engine

    @property
    def stripe(self) -> StripeStandIn:
        assert self.stand_in is not None
        return self.stand_in

    @property
    def stripe_provider(self) -> LossyStripeProvider:
        assert self.provider is not None
        return self.provider

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs a step of the domain, then notes the events Stripe sends for whatever the
        step changed there (our cancellations and refunds)."""
        try:
            return self.loop.run_until_complete(coro)
        finally:
            self.observe_stripe()

    def attempt(self, what: str, coro: Coroutine[Any, Any, T]) -> T | ErrorCode:
        try:
            result = self.run(coro)
        except DomainError as error:
            tally(f"{what}: {error.code.value}")
            return error.code
        tally(f"{what}: ok")
        return result

    def armed_failures(self) -> int:
        """Stripe requests still to fail (stripe_trouble; the stand-in's own list)."""
        return sum(f.remaining for f in self.stripe._failures)

    def book(
        self, viewer: uuid.UUID | None, request: booking.BookingRequest
    ) -> Coroutine[Any, Any, booking.BookingResult]:
        provider, rules = self.stripe_provider, booking.Policy()
        return saga.book(self.db, provider, self.lock, rules, viewer, request, self.now)

    def next_call_fails(self) -> bool:
        """Whether the next call to Stripe fails for good, all its tries."""
        return self.armed_failures() >= TRIES or self.stripe_provider.lose > 0

    def stripe_healthy(self) -> bool:
        return self.armed_failures() == 0 and self.stripe_provider.lose == 0

    # ---- Stripe's events ------------------------------------------------------------------

    def send(self, kind: str, intent_id: str) -> None:
        self.pool.events.append(self.stripe.event_for(kind, intent_id))

    def observe_stripe(self) -> None:
        """Stripe sends an event for every change of an intent or its refunds."""
        for intent_id, intent in self.stripe.intents.items():
            error = (intent.get("last_payment_error") or {}).get("message")
            now = Stripe(intent["status"], error, self.stripe.amount_refunded(intent_id))
            before = self.stripe_seen.get(intent_id)
            self.stripe_seen[intent_id] = now
            if before is None:
                continue  # payment_intent.created: nothing we act on
            if (now.status, now.error) != (before.status, before.error):
                self.send(self.event_type(intent_id), intent_id)
            if now.refunded != before.refunded:
                self.send("charge.refunded", intent_id)

    def deliver(self, event: JSON) -> str:
        """A webhook delivery as the route handles it: verified, then applied."""
        payload = compact(event)
        verified = self.stripe_provider.verify_event(
            payload, self.stripe.sign(payload, WEBHOOK_SECRET)
        )
        outcome = self.run(saga.apply_event(self.db, self.stripe_provider, verified, self.now))
        duplicate = event["id"] in self.pool.delivered
        assert (outcome == "duplicate") == duplicate, (outcome, event["type"])
        self.pool.delivered.add(event["id"])
        tally(f"deliver {event['type']}: {outcome.split(',')[0]}")
        return outcome

    # ---- reading the database -------------------------------------------------------------

    def rows(self) -> dict[uuid.UUID, Row]:
        return self.loop.run_until_complete(self._rows())

    async def _rows(self) -> dict[uuid.UUID, Row]:
        assert self.reader is not None
        found = await self.reader.fetch(
            """
            SELECT b.id, b.status, b.expires_at, p.status AS payment_status, p.amount,
                   p.refunded_amount, p.intent_id, r.amount AS refund_amount,
                   r.status AS refund_status,
                   ARRAY(SELECT c.status || ' ' || c.actor FROM booking_changes c
                         WHERE c.booking_id = b.id ORDER BY c.id) AS history
            FROM bookings b
            LEFT JOIN payments p ON p.booking_id = b.id
            LEFT JOIN refunds r ON r.payment_id = p.id
            WHERE b.organization_id = $1
            """,
            self.org_id,
        )
        out: dict[uuid.UUID, Row] = {}
        for r in found:
            assert r["payment_status"] is not None, f"a paid booking without payment: {r}"
            out[r["id"]] = Row(
                r["id"],
                BookingStatus(r["status"]),
                r["expires_at"],
                PaymentStatus(r["payment_status"]),
                r["amount"],
                r["refunded_amount"],
                r["intent_id"],
                r["refund_amount"],
                r["refund_status"],
                tuple((h.split(" ")[0], h.split(" ")[1]) for h in r["history"]),
            )
        return out

    def row(self, b: PaidBooking) -> Row:
        return self.rows()[b.id]

    # ---- what the policy owes -------------------------------------------------------------

    def refund_due(self, b: PaidBooking, status: BookingStatus) -> int:
        """What must go back once the booking's payment arrived: nothing while it is
        kept; the policy's share after the customer's own cancellation of a booking they
        had paid for (late: a percentage, rounded down); everything otherwise."""
        if status not in ENDED:
            return 0
        if status is BookingStatus.CANCELLED and b.ended_by == "customer":
            if b.ended_from in KEPT:
                late = b.start - datetime.now(UTC) < timedelta(hours=FREE_CANCELLATION_HOURS)
                assert late == (SLOT_DAYS[b.slot] == 3)  # the slots make it unambiguous
                return PRICE * self.late_percent // 100 if late else PRICE
            # Cancelled before it was paid: the payment that arrived anyway is for a
            # booking the customer never had, refunded in full like one for an expired
            # booking.
            return PRICE
        return PRICE

    # ---- rules ----------------------------------------------------------------------------

    @initialize(late_percent=st.sampled_from((0, 30)))
    def policy(self, late_percent: int) -> None:
        """The organization's refund policy: free cancellation until 7 days before the
        start, then `late_percent` back."""
        self.late_percent = late_percent

        async def update() -> None:
            async with self.db.begin() as conn:
                await users.update_organization_settings(
                    conn,
                    self.people.owner,
                    self.org_id,
                    free_cancellation_hours=FREE_CANCELLATION_HOURS,
                    late_cancellation_refund_percent=late_percent,
                )

        self.run(update())

    @initialize(
        target=bookings,
        persona=st.sampled_from(("customer", "guest")),
        service=st.sampled_from(("instant", "approval")),
        slot=st.integers(0, len(SLOT_DAYS) - 1),
        pays=st.booleans(),
    )
    def first_booking(self, persona: str, service: str, slot: int, pays: bool) -> Any:
        """A paid booking to start from (the rules about bookings need one)."""
        return self.create_paid_booking(persona, service, slot, pays)

    @precondition(lambda self: len(self.paid) < MAX_BOOKINGS)
    @rule(
        target=bookings,
        persona=st.sampled_from(("customer", "guest")),
        service=st.sampled_from(("instant", "approval")),
        slot=st.integers(0, len(SLOT_DAYS) - 1),
        pays=st.booleans(),
    )
    def create_paid_booking(self, persona: str, service: str, slot: int, pays: bool) -> Any:
        """createBooking for a paid service: PENDING_PAYMENT with an intent, or refused
        when the slot is taken (a seat past its deadline is free, swept or not), or
        nothing reserved when Stripe cannot be reached. pays: the SPA hands the client
        secret to Stripe.js at once and the charge goes through (the webhook, the
        confirmPayment call or the reconciliation that tell us come later, or never)."""
        start = self.slots[slot]
        self.keys += 1
        request = booking.BookingRequest(
            service_id=self.service_ids[service],
            start=start,
            staff_id=self.staff_id,
            any_staff=False,
            idempotency_key=f"{self.nonce}-{self.keys}",
            hold_id=None,
            hold_id_given=False,
            notes=None,
            guest=booking.Guest("Gus Guest", f"gus-{self.nonce}@example.com", None)
            if persona == "guest"
            else None,
        )
        rows = self.rows()
        taken = any(
            b.slot == slot
            and (
                rows[b.id].status in KEPT
                or (rows[b.id].status is BookingStatus.PENDING_PAYMENT and self.now < b.expires_at)
            )
            for b in self.paid.values()
        )
        unreachable = self.next_call_fails()
        viewer = self.people.customer if persona == "customer" else None
        result = self.attempt(
            "create",
            self.book(viewer, request),
        )
        if taken:
            assert result == ErrorCode.SLOT_UNAVAILABLE, result
            return multiple()
        if unreachable:
            # Nothing reserved: the booking was cancelled at once, its payment CANCELED
            # (the invariants check the rows of bookings the model does not know).
            assert result == ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE, result
            return multiple()
        assert isinstance(result, booking.BookingResult), result
        made = result.booking
        assert made.status is BookingStatus.PENDING_PAYMENT
        assert made.expires_at == self.now + timedelta(minutes=15)
        row = self.rows()[made.id]
        assert row.intent_id is not None
        assert self.stripe.intent(row.intent_id)["amount"] == PRICE
        b = PaidBooking(
            made.id,
            slot,
            start,
            persona,
            service,
            result.manage_token,
            request,
            row.intent_id,
            made.expires_at,
        )
        self.paid[b.id] = b
        if pays:
            self.stripe.succeed(b.intent_id)
            self.observe_stripe()
        return b

    @rule(b=bookings)
    def replay_create_booking(self, b: PaidBooking) -> None:
        """The very same createBooking again: the same booking, no second intent."""
        intents = self.stripe.created_intents
        viewer = self.people.customer if b.persona == "customer" else None
        result = self.attempt(
            "replay",
            self.book(viewer, b.request),
        )
        if result == ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE:
            return  # asking for the intent again failed; the booking is left as it was
        assert isinstance(result, booking.BookingResult), result
        assert result.booking.id == b.id
        assert self.stripe.created_intents == intents

    def live(self, b: PaidBooking) -> bool:
        """Whether Stripe would still let the customer act on the intent."""
        live = self.stripe.intents[b.intent_id]["status"] not in ("succeeded", "canceled")
        if not live:
            tally("skipped: intent already final at Stripe")
        return live

    @rule(
        b=bookings,
        what=st.sampled_from(("pays", "pays", "pays", "is declined", "is processing")),
    )
    def customer_at_stripe(self, b: PaidBooking, what: str) -> None:
        """What the customer's browser and the card network do to the intent (nothing
        once it succeeded or was cancelled): the charge goes through, the card is
        declined, or a slower payment method is processing."""
        if not self.live(b):
            return
        if what == "pays":
            self.stripe.succeed(b.intent_id)
        elif what == "is declined":
            self.stripe.fail(b.intent_id)
            # Declined twice in a row is a second event with the same state.
            self.send("payment_intent.payment_failed", b.intent_id)
        else:
            self.stripe.processing(b.intent_id)
        self.observe_stripe()

    # No precondition on the pool: what is in it may depend on how a race went, and
    # Hypothesis needs the same draws to enable the same rules.
    @rule(pick=st.integers(0, 10_000), next_one=st.booleans())
    def deliver_webhook(self, pick: int, next_one: bool) -> None:
        """Stripe delivers one of the events it sent (any, again and again: duplicates,
        old ones after new ones), or the oldest one not delivered yet."""
        waiting = [e for e in self.pool.events if e["id"] not in self.pool.delivered]
        pool = self.pool.events
        if not pool:
            tally("skipped: no event yet")
            return
        event = waiting[0] if next_one and waiting else pool[pick % len(pool)]
        intent_id = event["data"]["object"].get("payment_intent") or event["data"]["object"]["id"]
        b = next((p for p in self.paid.values() if p.intent_id == intent_id), None)
        before = self.row(b) if b else None
        healthy = self.stripe_healthy()
        self.deliver(event)
        if b is None or before is None:
            return
        after = self.row(b)
        if (
            event["type"] == "payment_intent.succeeded"
            and before.status is BookingStatus.PENDING_PAYMENT
        ):
            self.check_paid_outcome(b, after, healthy)

    def check_paid_outcome(self, b: PaidBooking, after: Row, healthy: bool) -> None:
        """The booking after a success was applied to it while it waited for it: kept in
        time, else expired and (Stripe healthy before the step) refunded at once."""
        if self.now < b.expires_at:
            want = (
                BookingStatus.PENDING_CONFIRMATION
                if b.service == "approval"
                else BookingStatus.CONFIRMED
            )
            assert after.status is want, (after, want)
        else:
            tally("a payment applied after its deadline")
            assert after.status is BookingStatus.EXPIRED, after
            if healthy:
                assert after.refunded == PRICE, after

    @rule(b=bookings, paid_first=st.booleans())
    def confirm_payment(self, b: PaidBooking, paid_first: bool) -> None:
        """confirmPayment by the payer: the server asks Stripe. paid_first: the SPA's
        flow, Stripe.js has just paid (when Stripe still lets it)."""
        if paid_first and self.live(b):
            self.stripe.succeed(b.intent_id)
            self.observe_stripe()
        before = self.row(b)
        intent = self.stripe.intent(b.intent_id)
        unreachable = self.next_call_fails()
        healthy = self.stripe_healthy()
        viewer = self.people.customer if b.persona == "customer" else None
        result = self.attempt(
            "confirmPayment",
            saga.confirm_payment(self.db, self.stripe_provider, viewer, b.id, b.token, self.now),
        )
        after = self.row(b)
        asks = before.status is BookingStatus.PENDING_PAYMENT and before.payment_status in OPEN
        if not asks:
            assert isinstance(result, Booking), result
            assert after.status is before.status
            return
        if unreachable:
            assert result == ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE, result
            assert after.status is before.status
            return
        if intent["status"] == "succeeded":
            assert isinstance(result, Booking), result
            self.check_paid_outcome(b, after, healthy)
        elif intent["status"] == "requires_payment_method" and intent["last_payment_error"]:
            assert result == ErrorCode.PAYMENT_FAILED, result
            assert after.status is BookingStatus.PENDING_PAYMENT
            assert after.payment_status is PaymentStatus.FAILED
        else:
            assert isinstance(result, Booking), result
            assert result.status is BookingStatus.PENDING_PAYMENT

    def end(self, b: PaidBooking, by: str, target: BookingStatus) -> None:
        before = self.row(b).status
        owner = self.people.owner
        coro: Coroutine[Any, Any, Booking]
        if by == "customer":
            viewer = self.people.customer if b.persona == "customer" else None
            coro = booking.cancel_booking(self.db, viewer, b.id, "cannot come", b.token, self.now)
        elif target is BookingStatus.CANCELLED:
            coro = booking.cancel_booking(self.db, owner, b.id, "staff ill", None, self.now)
        elif target is BookingStatus.DECLINED:
            coro = booking.decline_booking(self.db, owner, b.id, "no", self.now)
        else:
            coro = booking.confirm_booking(self.db, owner, b.id, self.now)
        result = self.attempt(f"{by} {target.value.lower()}", coro)
        allowed = TRANSITIONS.get((before, target))
        if allowed is None:
            assert result == ErrorCode.NOT_CANCELLABLE, (result, before)
            return
        if not allowed & (CUSTOMERS if by == "customer" else {Actor.ADMIN}):
            assert result == ErrorCode.FORBIDDEN, (result, before)  # only a payment confirms
            return
        assert isinstance(result, Booking), result
        assert result.status is target
        if target in ENDED:
            b.ended_by, b.ended_from = by, before

    @rule(
        b=bookings,
        what=st.sampled_from(
            ("customer cancels", "business cancels", "business declines", "business confirms")
        ),
    )
    def someone_decides(self, b: PaidBooking, what: str) -> None:
        """The customer (or guest) cancels; or the business (its owner) cancels, or
        declines or confirms a paid booking waiting for its yes."""
        if what == "customer cancels":
            self.end(b, "customer", BookingStatus.CANCELLED)
        elif what == "business cancels":
            self.end(b, "business", BookingStatus.CANCELLED)
        elif what == "business declines":
            self.end(b, "decline", BookingStatus.DECLINED)
        else:
            self.end(b, "business", BookingStatus.CONFIRMED)

    def customer_cancels(self, b: PaidBooking) -> None:
        self.end(b, "customer", BookingStatus.CANCELLED)

    @rule(minutes=st.sampled_from((1, 5, 16)), sweep=st.booleans())
    def time_passes(self, minutes: int, sweep: bool) -> None:
        """Time passes (16 minutes: past a 15-minute payment window); maybe the sweep runs."""
        self.now += timedelta(minutes=minutes)
        if sweep:
            self.run_sweep()

    def run_sweep(self) -> None:
        rows = self.rows()
        due = {
            b.id
            for b in self.paid.values()
            if rows[b.id].status is BookingStatus.PENDING_PAYMENT and b.expires_at <= self.now
        }
        expired = self.run(booking.expire_unpaid(self.db, self.now))
        assert expired == len(due), (expired, due)
        after = self.rows()
        for booking_id in due:
            assert after[booking_id].status is BookingStatus.EXPIRED

    @rule(job=st.sampled_from(("settler", "settler", "reconcile", "sweep")))
    def background(self, job: str) -> None:
        """A background job runs: the outbox consumer "payments", the reconciliation, or
        the expiry sweep."""
        if job == "settler":
            self.settler_runs()
        elif job == "reconcile":
            self.reconcile()
        else:
            self.run_sweep()

    def reconcile(self) -> None:
        """The reconciliation job."""
        self.run(reconciliation.reconcile(self.db, self.stripe_provider, self.now))

    def settler_runs(self) -> None:
        """The outbox consumer "payments" handles every booking change committed since."""
        assert self.reader is not None
        assert self.consumer is not None
        self.run(outbox.drain(self.reader, self.consumer))

    @rule(b=bookings)
    def settle_again(self, b: PaidBooking) -> None:
        """settle() once more for one booking (it is idempotent: the request paths, the
        settler in another process and the reconciliation all call it)."""
        self.run(saga.settle(self.db, self.stripe_provider, b.id, self.now))

    @rule(trouble=st.sampled_from(("one 500", "two 500s", "a failed call", "a lost answer")))
    def stripe_trouble(self, trouble: str) -> None:
        """Stripe's next requests answer 500 (one or two: the retries cope; TRIES of them:
        the next call fails), or it does what the next call asks but the answer never
        reaches us."""
        if trouble == "a lost answer":
            self.stripe_provider.lose = 1
        else:
            self.stripe.fail_next(count={"one 500": 1, "two 500s": 2}.get(trouble, TRIES))

    @rule(b=bookings, first=st.sampled_from(RACERS), second=st.sampled_from(RACERS))
    def race(self, b: PaidBooking, first: str, second: str) -> None:
        """Two things at once, on two connections (a webhook and the customer cancelling,
        the sweep and confirmPayment, ...): whatever the interleaving, the invariants
        hold."""

        async def one(what: str) -> object:
            viewer = self.people.customer if b.persona == "customer" else None
            provider, now = self.stripe_provider, self.now
            if what == "webhook":  # Stripe tells the intent's state now, in a new event
                event = self.stripe.event_for(self.event_type(b.intent_id), b.intent_id)
                self.pool.events.append(event)
                self.pool.delivered.add(event["id"])
                payload = compact(event)
                verified = provider.verify_event(payload, self.stripe.sign(payload, WEBHOOK_SECRET))
                return await saga.apply_event(self.db, provider, verified, now)
            if what == "confirmPayment":
                return await saga.confirm_payment(self.db, provider, viewer, b.id, b.token, now)
            if what == "customer cancels":
                return await booking.cancel_booking(self.db, viewer, b.id, "x", b.token, now)
            if what == "business cancels":
                owner = self.people.owner
                return await booking.cancel_booking(self.db, owner, b.id, "x", None, now)
            if what == "sweep":
                return await booking.expire_unpaid(self.db, now)
            if what == "settle":
                await saga.settle(self.db, provider, b.id, now)
            else:
                assert what == "reconcile"
                await reconciliation.reconcile(self.db, provider, now)
            return None

        async def both() -> list[object]:
            return list(await asyncio.gather(one(first), one(second), return_exceptions=True))

        for outcome in self.run(both()):
            if isinstance(outcome, DomainError):
                tally(f"race: {outcome.code.value}")
            elif isinstance(outcome, BaseException):
                raise outcome
        # Who ended it, from its history (the model knows only what it did itself).
        r = self.row(b)
        if b.ended_by is None and r.status in (BookingStatus.CANCELLED, BookingStatus.DECLINED):
            actor = r.history[-1][1]
            b.ended_by = "customer" if actor in ("customer", "guest") else "business"
            b.ended_from = BookingStatus(r.history[-2][0])

    def event_type(self, intent_id: str) -> str:
        """The payment_intent event for the intent's state now."""
        intent = self.stripe.intents[intent_id]
        kind = EVENT_TYPES.get(intent["status"])
        if kind is None:
            failed = intent.get("last_payment_error")
            kind = "payment_intent.payment_failed" if failed else "payment_intent.created"
        return kind

    @rule(deliver_rest=st.booleans())
    def everything_settles(self, deliver_rest: bool) -> None:
        """Stripe is healthy again (maybe delivers what it has not yet); the
        reconciliation and the settler run until nothing changes. Then money and bookings
        agree for good."""
        self.stripe.heal()
        self.stripe_provider.lose = 0
        if deliver_rest:
            for event in list(self.pool.events):
                if event["id"] not in self.pool.delivered:
                    self.deliver(event)
            self.money_and_bookings_agree()
        state: object = None
        for _ in range(8):
            self.now += reconciliation.CHECK_EVERY + timedelta(seconds=1)
            self.reconcile()
            self.settler_runs()
            self.money_and_bookings_agree()  # at this `now`, the time of what changed
            seen = (self.rows(), {k: repr(v) for k, v in self.stripe_seen.items()})
            if seen == state:
                break
            state = seen
        else:
            raise AssertionError("reconciliation and settler did not come to rest")
        self.check_settled()

    # ---- invariants -----------------------------------------------------------------------

    def check_settled(self) -> None:
        rows = self.rows()
        for b in self.paid.values():
            r = rows[b.id]
            intent = self.stripe.intents[b.intent_id]
            refunded_at_stripe = self.stripe.amount_refunded(b.intent_id)
            assert r.refund_status in (None, "SUCCEEDED", "NOT_DUE"), r  # nothing left to retry
            tally(f"settled: {r.status.value} with {r.payment_status.value}")
            if r.status is BookingStatus.PENDING_PAYMENT:
                # Stripe's success would have been found by the reconciliation.
                assert intent["status"] != "succeeded", (r, intent["status"])
                continue
            if r.status in KEPT:
                continue  # the step invariants: SUCCEEDED, nothing refunded
            assert r.status in ENDED, r
            if intent["status"] == "succeeded":
                due = self.refund_due(b, r.status)
                assert r.payment_status in PAID, r
                assert r.refunded == due == refunded_at_stripe, (r, due, refunded_at_stripe, b)
                if b.ended_by == "customer":
                    paid_first = "paid" if b.ended_from in KEPT else "unpaid"
                    tally(f"settled: cancelled by the customer ({paid_first}), {due} back")
            else:
                assert intent["status"] == "canceled", (r, intent["status"])
                assert r.payment_status is PaymentStatus.CANCELED, r
                assert r.refunded == 0, r

    @invariant()
    def money_and_bookings_agree(self) -> None:
        if self.stand_in is None:
            return
        rows = self.rows()
        for booking_id, r in rows.items():
            before = self.last_rows.get(booking_id)
            b = self.paid.get(booking_id)
            self.never_backwards(b, before, r)
            if b is None:
                # Stripe could not be reached when it was made: nothing reserved, no
                # intent, nothing to pay.
                assert r.status is BookingStatus.CANCELLED, r
                assert r.history[-1] == ("CANCELLED", "payment"), r
                assert r.payment_status is PaymentStatus.CANCELED, r
                assert r.intent_id is None, r
                continue
            self.consistent(b, r)
        # One seat per slot: a booking kept, or waiting for its payment in time.
        holders = [
            b.slot
            for b in self.paid.values()
            if rows[b.id].status in KEPT
            or (rows[b.id].status is BookingStatus.PENDING_PAYMENT and self.now < b.expires_at)
        ]
        assert len(holders) == len(set(holders)), holders
        self.last_rows = rows

    def consistent(self, b: PaidBooking, r: Row) -> None:
        intent = self.stripe.intents[b.intent_id]
        refunded_at_stripe = self.stripe.amount_refunded(b.intent_id)
        refunds_at_stripe = [
            x for x in self.stripe.refunds.values() if x["payment_intent"] == b.intent_id
        ]
        assert r.intent_id == b.intent_id
        assert r.amount == intent["amount"] == PRICE, r
        if r.status in KEPT:
            assert r.payment_status is PaymentStatus.SUCCEEDED, r
            assert intent["status"] == "succeeded", (r, intent["status"])
            assert refunded_at_stripe == 0, (r, refunded_at_stripe)
        if r.status is BookingStatus.PENDING_PAYMENT:
            assert r.payment_status in OPEN, r
        if r.payment_status in PAID:
            assert intent["status"] == "succeeded", (r, intent["status"])  # never unpaid
        if intent["status"] == "canceled":
            assert r.status in ENDED, (r, "its intent was cancelled")
        assert len(refunds_at_stripe) <= 1, refunds_at_stripe
        assert 0 <= r.refunded <= refunded_at_stripe <= r.amount, (r, refunded_at_stripe)
        if r.payment_status is PaymentStatus.REFUNDED:
            assert r.refunded == r.amount, r
        elif r.payment_status is PaymentStatus.PARTIALLY_REFUNDED:
            assert 0 < r.refunded < r.amount, r
        else:
            assert r.refunded == 0, r
        if r.refund_amount is not None:
            due = self.refund_due(b, r.status)
            assert r.refund_amount == due, (r, due, b)
            # Nothing due is decided too (NOT_DUE), so a later policy cannot change it.
            assert (r.refund_status == "NOT_DUE") == (due == 0), (r, due, b)
            if r.refund_status == "SUCCEEDED":
                assert refunded_at_stripe == r.refund_amount == r.refunded, (r, refunded_at_stripe)
        # The model and the history agree on who ended it.
        if b.ended_by is not None:
            assert r.status in ENDED, r
            final, actor = r.history[-1]
            assert final == r.status.value, r
            wanted = {"customer": ("customer", "guest"), "business": ("admin",)}
            assert actor in wanted.get(b.ended_by, ("admin",)), (r, b.ended_by)

    def never_backwards(self, b: PaidBooking | None, before: Row | None, r: Row) -> None:
        """What changed since the last look (at this `now`: the time of the change) moved
        forward only; a payment confirms a booking only before its deadline, and only the
        deadline expires it."""
        if before is None:
            return
        if b is not None and before.status is BookingStatus.PENDING_PAYMENT:
            if r.status in KEPT:
                assert self.now < b.expires_at, ("paid too late, yet kept", r)
            elif r.status is BookingStatus.EXPIRED:
                assert self.now >= b.expires_at, ("expired early", r)
        moved = (before.payment_status, r.payment_status)
        assert RANK[r.payment_status] >= RANK[before.payment_status], moved
        assert r.refunded >= before.refunded, (before, r)
        if before.refund_amount is not None:
            assert r.refund_amount == before.refund_amount, (before, r)  # decided once
        if before.status in ENDED:
            assert r.status is before.status, (before.status, r.status)
        if before.status in KEPT:
            assert r.status in KEPT | {BookingStatus.CANCELLED, BookingStatus.DECLINED}, r
        assert r.history[: len(before.history)] == before.history, (before, r)


TestPaymentSaga = PaymentSagaMachine.TestCase


# ---- bugs found, made deterministic (each failed before its fix) ---------------------------


def test_a_payment_after_an_unpaid_booking_was_cancelled_is_refunded_in_full() -> None:
    """The customer cancels a booking that still waits for its payment (3 days ahead: a
    late cancellation by the policy, which refunds 0 %), while their payment is under way
    at Stripe. The payment goes through before the settler cancels the intent; the
    settler then finds it succeeded. The booking was never confirmed, so the money goes
    back in full, as for a payment that arrives after the booking expired."""
    machine = PaymentSagaMachine()
    try:
        machine.policy(late_percent=0)
        b = machine.create_paid_booking("customer", "instant", 0, pays=False)
        assert isinstance(b, PaidBooking)
        machine.customer_cancels(b)
        assert machine.row(b).status is BookingStatus.CANCELLED
        machine.stripe.succeed(b.intent_id)  # Stripe.js was already paying
        machine.settler_runs()  # its cancellation is refused: the success is applied
        row = machine.row(b)
        assert row.payment_status is PaymentStatus.REFUNDED, row
        assert row.refunded == PRICE == machine.stripe.amount_refunded(b.intent_id)
    finally:
        machine._close()


def test_a_refund_decided_as_nothing_is_not_decided_again() -> None:
    """The customer cancels their paid booking late under a 0 % policy: nothing goes back.
    The owner raises the late percentage afterwards; settle() running again for that
    booking (the settler delivers at least once; any later change of the booking) must
    not refund now: a payment's compensation is decided once (docs/payments.md), nothing
    due included (a NOT_DUE refund row)."""
    machine = PaymentSagaMachine()
    try:
        machine.policy(late_percent=0)
        b = machine.create_paid_booking("customer", "instant", 0, pays=True)  # 3 days ahead
        assert isinstance(b, PaidBooking)
        machine.confirm_payment(b, paid_first=False)
        assert machine.row(b).status is BookingStatus.CONFIRMED
        machine.customer_cancels(b)
        machine.settler_runs()
        assert machine.row(b).refunded == 0  # late, 0 %: the policy of the day
        machine.policy(late_percent=50)
        machine.settle_again(b)
        assert machine.row(b).refunded == 0 == machine.stripe.amount_refunded(b.intent_id)
    finally:
        machine._close()
