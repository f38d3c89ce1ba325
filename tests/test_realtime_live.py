"""Live windows of one process (realtime/live.py) against its own writes and reads: a
change is shown by the process that made it as soon as it answered, a read never costs a
subscriber its push, and a window being computed for a new subscriber while it changes
keeps hearing of later changes; and against time alone (a hold expiring, a slot passing
its minimum notice, the trust period ending), on a clock the test moves instead of
sleeping (infra/clock.py). In-process server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import pytest

from domain import events
from domain.availability.live import LONGEST_TRUST
from infra.clock import ManualClock
from tests.booking_api import HOLD, create
from tests.business import create_business, payload, sign_up
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import as_utc, db_key
from tests.realtime_helpers import PUSH, capacity, data_for, day_window, monday, query, until
from tests.test_availability_api import local
from tests.test_catalog import ADD_TIME_OFF
from tests.ws_client import AVAILABILITY_CHANGED, socket

if TYPE_CHECKING:
    from realtime.hub import Hub

AVAILABILITY_QUERY = """
query($serviceId: ID!, $start: DateTime!, $end: DateTime!) {
  availability(serviceId: $serviceId, start: $start, end: $end) { slots { start } }
}"""


@contextlib.asynccontextmanager
async def slow_commits(database_url: str, org_id: str, seconds: float) -> AsyncIterator[None]:
    """Every transaction that inserts a booking of this organization takes `seconds`
    longer to commit (a deferred constraint trigger runs at COMMIT), as a commit waiting
    on a slow disk would. Only in the test database, removed on the way out."""
    name = f"test_slow_commit_{uuid.uuid4().hex[:12]}"
    org = db_key(org_id, "Organization")
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$"
        )
        await conn.execute(
            f"CREATE CONSTRAINT TRIGGER {name} AFTER INSERT ON bookings"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            f" WHEN (NEW.organization_id = '{org}') EXECUTE FUNCTION {name}()"
        )
        yield
    finally:
        await conn.execute(f"DROP TRIGGER IF EXISTS {name} ON bookings")
        await conn.execute(f"DROP FUNCTION IF EXISTS {name}()")
        await conn.close()


@pytest.fixture
def clock(server: Server) -> Iterator[ManualClock]:
    """The live windows' clock, standing still at the real time until the test moves it."""
    live = server.app_state.live
    real, live.clock = live.clock, ManualClock()
    try:
        yield live.clock
    finally:
        live.clock = real
        # What was computed on the test's time is not trusted on the real one.
        for window in live.windows.values():
            window.stale = True


def relay_late(hub: Hub, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Events from the bus (the relay's copies) reach the live windows `seconds` late;
    what app.py's `events.on_commit` hands over directly is not delayed (it holds the
    original bound method)."""
    relayed = hub.live.changed

    def late(batch: list[events.Event]) -> None:
        asyncio.get_running_loop().call_later(seconds, relayed, batch)

    monkeypatch.setattr(hub.live, "changed", late)


def relay_muted(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay's copies of events never reach the live windows (those of a test's
    set-up may come after it and touch its window); what app.py's `events.on_commit`
    hands over directly still does."""
    monkeypatch.setattr(hub.live, "changed", lambda batch: None)


async def offered(gql: GraphQLClient, window: dict[str, str]) -> list[str]:
    asked = await gql.data(AVAILABILITY_QUERY, window)
    return [s["start"] for s in asked["availability"]["slots"]]


async def test_a_committed_booking_is_not_offered_by_the_process_that_made_it(
    gql: GraphQLClient, server: Server, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read your writes (domain/events.py `on_commit`): once createBooking has answered,
    the `availability` query on the same process no longer offers the slot, even while
    the relay's copy of the event is still on its way. Here the commit takes 0.3 s and
    the relay's events reach the live windows 0.5 s late."""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    hub: Hub = server.app_state.realtime
    window = {"serviceId": biz.service_id, **day_window(monday())}
    ten = as_utc(local(monday(), 10))
    relay_late(hub, monkeypatch, 0.5)
    async with socket(server.base_url) as ws, slow_commits(database_url, biz.org_id, 0.3):
        await ws.init()
        sid = await ws.subscribe(AVAILABILITY_CHANGED, window)  # a watched window
        assert ten in capacity(await data_for(ws, sid))
        made = await create(
            gql, customer.token, serviceId=biz.service_id, start=ten, staffId=biz.staff_ids[0]
        )
        assert made["errors"] == [], made
        shown = await offered(gql, window)
        # The subscriber gets there in the end (through the relay) either way.
        assert ten not in capacity(await data_for(ws, sid, PUSH))
        assert ten not in shown, "the booked slot is still offered after createBooking answered"


async def test_a_query_right_after_a_booking_does_not_swallow_the_push(
    gql: GraphQLClient, server: Server
) -> None:
    """An app books, then asks for the window again at once (as a page refreshing its
    slots does). The subscribers of that window must still be pushed the change."""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    window = {"serviceId": biz.service_id, **day_window(monday())}
    ten = as_utc(local(monday(), 10))
    async with socket(server.base_url) as ws:
        await ws.init()
        sid = await ws.subscribe(AVAILABILITY_CHANGED, window)
        assert ten in capacity(await data_for(ws, sid))
        made = await create(
            gql, customer.token, serviceId=biz.service_id, start=ten, staffId=biz.staff_ids[0]
        )
        assert made["errors"] == [], made
        assert ten not in await offered(gql, window)
        assert ten not in capacity(await data_for(ws, sid, PUSH))


async def reading_claims_blocked(database_url: str) -> bool:
    """Whether a read of live claims (an availability computation) waits on a lock."""
    rows = await query(
        database_url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE '%SELECT resource_id, service_id%'",
    )
    return bool(rows)


async def test_a_window_that_changes_while_its_first_subscriber_waits_stays_live(
    gql: GraphQLClient, server: Server, database_url: str
) -> None:
    """The first subscriber of a window waits for its first computation; a change to the
    window lands meanwhile. The subscriber must still be pushed that change and later
    ones. (The computation is held up by a lock the test takes on `claims`, which the
    change, a staff member's time off, does not touch.)"""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    staff = biz.staff_ids[0]
    window = {"serviceId": biz.service_id, "staffId": staff, **day_window(monday())}
    noon, half_past, two = (
        as_utc(local(monday(), 12)),
        as_utc(local(monday(), 12, 30)),
        as_utc(local(monday(), 14)),
    )
    async with socket(server.base_url) as ws:
        await ws.init()
        blocker = await asyncpg.connect(database_url, timeout=10)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE claims IN ACCESS EXCLUSIVE MODE")
                sid = await ws.subscribe(AVAILABILITY_CHANGED, window)
                await until(lambda: reading_claims_blocked(database_url))
                await payload(
                    gql,
                    ADD_TIME_OFF,
                    {
                        "organizationId": biz.org_id,
                        "staffId": staff,
                        "start": local(monday(), 12),
                        "end": local(monday(), 13),
                    },
                    biz.owner.token,
                    "addTimeOff",
                )
        finally:
            await blocker.close()
        # The snapshot may or may not show the time off (it was read before the lock
        # wait); if not, a push follows that does.
        first = capacity(await data_for(ws, sid, PUSH))
        if noon in first:
            first = capacity(await data_for(ws, sid, PUSH))
        assert noon not in first
        assert half_past not in first
        # And later changes are pushed too.
        made = await create(
            gql, customer.token, serviceId=biz.service_id, start=local(monday(), 14), staffId=staff
        )
        assert made["errors"] == [], made
        later = capacity(await data_for(ws, sid, PUSH))
        assert later == {k: v for k, v in first.items() if k != two}


async def test_a_hold_expiring_frees_its_slot_when_the_clock_passes_its_expiry(
    gql: GraphQLClient, server: Server, clock: ManualClock
) -> None:
    """A hold takes its slot off the window; once the clock passes the hold's expiry the
    window's timer fires and subscribers get the slot back, as queries do."""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    staff = biz.staff_ids[0]
    window = {"serviceId": biz.service_id, "staffId": staff, **day_window(monday())}
    ten = as_utc(local(monday(), 10))
    async with socket(server.base_url) as ws:
        await ws.init()
        sid = await ws.subscribe(AVAILABILITY_CHANGED, window)
        assert ten in capacity(await data_for(ws, sid))
        hold = {"serviceId": biz.service_id, "start": local(monday(), 10), "staffId": staff}
        held = await gql.data(HOLD, {"input": hold}, customer.token)
        assert held["holdSlot"]["errors"] == [], held
        expires = datetime.fromisoformat(held["holdSlot"]["hold"]["expiresAt"])
        assert ten not in capacity(await data_for(ws, sid, PUSH))
        assert ten not in await offered(gql, window)
        clock.move_to(expires + timedelta(seconds=1))
        assert ten in capacity(await data_for(ws, sid, PUSH))
        assert ten in await offered(gql, window)


async def test_a_slot_passing_its_minimum_notice_is_withdrawn_when_the_clock_says_so(
    gql: GraphQLClient, server: Server, clock: ManualClock
) -> None:
    """With an hour's notice, at 08:30 the first slot offered is 09:30; at 09:00 it is
    10:00, and subscribers are told without anyone asking."""
    biz = await create_business(gql, service={"minNoticeMinutes": 60})
    day = monday()
    clock.move_to(datetime.fromisoformat(local(day, 8, 30)))
    window = {"serviceId": biz.service_id, **day_window(day)}
    nine, half_past_nine, ten = (
        as_utc(local(day, 9)),
        as_utc(local(day, 9, 30)),
        as_utc(local(day, 10)),
    )
    async with socket(server.base_url) as ws:
        await ws.init()
        sid = await ws.subscribe(AVAILABILITY_CHANGED, window)
        first = capacity(await data_for(ws, sid))
        assert nine not in first
        assert half_past_nine in first
        clock.advance(timedelta(minutes=30))
        later = capacity(await data_for(ws, sid, PUSH))
        assert half_past_nine not in later
        assert ten in later
        assert min(later) == ten
    assert (await offered(gql, window))[0] == ten


async def test_a_kept_window_is_trusted_for_a_minute_at_most(
    gql: GraphQLClient, server: Server, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window nobody changes is answered from memory (no SQL) until the trust period
    ends (the booking horizon moves with the clock); then it is computed again."""
    biz = await create_business(gql)
    window = {"serviceId": biz.service_id, **day_window(monday())}
    relay_muted(server.app_state.realtime, monkeypatch)
    first = await offered(gql, window)
    assert await offered(gql, window) == first  # asked twice: the answer is kept
    server.counter.start()
    assert await offered(gql, window) == first
    clock.advance(LONGEST_TRUST - timedelta(seconds=1))
    assert await offered(gql, window) == first
    assert server.counter.stop() == 0, server.counter.statements
    clock.advance(timedelta(seconds=2))
    server.counter.start()
    assert await offered(gql, window) == first
    # service, organization, the staff calendars, claims
    assert server.counter.stop() == 4, server.counter.statements
