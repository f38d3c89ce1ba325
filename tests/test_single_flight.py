"""A popular window warms once (domain/availability/live.py): concurrent first askers of
a window share one computation of it and one answer, kept once, whether they query it
or subscribe to it. The computation is held up by a lock the test takes on `claims`
until every asker is in. In-process server."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import resolvers.availability as resolver
from domain.availability import service as availability
from domain.availability.live import LiveAvailability
from domain.availability.records import Service
from tests.business import create_business, payload
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import as_utc
from tests.realtime_helpers import data_for, until
from tests.test_availability_api import AVAILABILITY, local, next_weekday
from tests.test_catalog import ADD_TIME_OFF
from tests.test_realtime_live import reading_claims_blocked, relay_muted
from tests.ws_client import socket

ASKERS = 16

SUBSCRIPTION = """
subscription($service: ID!, $start: DateTime!, $end: DateTime!) {
  availabilityChanged(serviceId: $service, start: $start, end: $end) { slots { start } }
}"""


class Calls:
    def __init__(self) -> None:
        self.count = 0


def counted(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> Calls:
    """Counts the calls of `owner.name` (a function or method, sync or async)."""
    original = getattr(owner, name)
    calls = Calls()
    wrapper: Any
    if inspect.iscoroutinefunction(original):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.count += 1
            return await original(*args, **kwargs)
    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.count += 1
            return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


@contextlib.asynccontextmanager
async def claims_locked(database_url: str) -> AsyncIterator[None]:
    """No one reads `claims` (an availability computation's last statement) meanwhile."""
    blocker = await asyncpg.connect(database_url, timeout=10)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE claims IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await blocker.close()


def month_window(service_id: str) -> dict[str, str]:
    monday = next_weekday(0)
    return {
        "service": service_id,
        "start": local(monday, 0),
        "end": local(monday + timedelta(days=31), 0),
    }


async def test_concurrent_first_askers_of_a_window_share_one_computation(
    gql: GraphQLClient, server: Server, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 clients ask at once for a window nobody asked before: the window is computed
    once, the answer made once (the SQL of one request), and all get that answer; the
    next asker gets it as kept, without SQL."""
    biz = await create_business(gql, staff_count=3)
    live = server.app_state.live
    relay_muted(server.app_state.realtime, monkeypatch)  # the set-up's events, late
    computations = counted(monkeypatch, live, "_compute")
    made = counted(monkeypatch, resolver, "availability_of")
    asked = counted(monkeypatch, live, "answer")  # every request looks for a kept one first
    variables = month_window(biz.service_id)
    async with claims_locked(database_url):
        server.counter.start()
        asking = [asyncio.create_task(gql.data(AVAILABILITY, variables)) for _ in range(ASKERS)]
        await until(lambda: asked.count == ASKERS)
        await until(lambda: reading_claims_blocked(database_url))
    answers = await asyncio.gather(*asking)
    statements = server.counter.stop()
    assert computations.count == 1
    assert made.count == 1
    # service, organization, the staff calendars, claims: as for one request.
    assert statements == 4, server.counter.statements
    assert answers[0]["availability"]["slots"]
    assert all(answer == answers[0] for answer in answers)

    server.counter.start()
    again = await gql.data(AVAILABILITY, variables)
    assert server.counter.stop() == 0, server.counter.statements  # the kept answer
    assert again == answers[0]
    assert computations.count == 1
    assert made.count == 1


async def test_subscribers_and_askers_of_a_new_window_share_one_computation(
    gql: GraphQLClient, server: Server, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half subscribe (each with a document of its own: no shared feed), half query, all
    at once: one computation of the window, and every snapshot and answer offers the
    same slots."""
    biz = await create_business(gql, staff_count=2)
    live = server.app_state.live
    relay_muted(server.app_state.realtime, monkeypatch)  # the set-up's events, late
    computations = counted(monkeypatch, live, "_compute")
    asked = counted(monkeypatch, live, "answer")
    watched = counted(monkeypatch, live, "watch")
    variables = month_window(biz.service_id)
    half = ASKERS // 2
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(socket(server.base_url)) for _ in range(half)]
        for ws in sockets:
            await ws.init()
        async with claims_locked(database_url):
            sids = [
                await ws.subscribe(f"{SUBSCRIPTION} # subscriber {i}", variables)
                for i, ws in enumerate(sockets)
            ]
            asking = [asyncio.create_task(gql.data(AVAILABILITY, variables)) for _ in range(half)]
            await until(lambda: asked.count == half and watched.count == half)
            await until(lambda: reading_claims_blocked(database_url))
        answers = await asyncio.gather(*asking)
        snapshots = [
            (await data_for(ws, sid))["data"]["availabilityChanged"]
            for ws, sid in zip(sockets, sids, strict=True)
        ]
    assert computations.count == 1
    offered = [s["start"] for s in answers[0]["availability"]["slots"]]
    assert offered
    assert all(a == answers[0] for a in answers)
    assert all([s["start"] for s in snap["slots"]] == offered for snap in snapshots)


@pytest.mark.parametrize("one_staff", [False, True], ids=["any staff", "one staff member"])
async def test_an_answer_made_before_a_change_is_not_handed_to_later_askers(
    gql: GraphQLClient,
    server: Server,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    one_staff: bool,
) -> None:
    """A first asker's answer is being made (its window read the staff's calendar, then
    waits on `claims`); time off is added, and answered; then a second asker comes and
    awaits that answer. It must not get it, made from before the change: it gets one
    that shows the time off (read your writes)."""
    biz = await create_business(gql, staff_count=1)
    live = server.app_state.live
    asked = counted(monkeypatch, live, "answer")
    variables = month_window(biz.service_id)
    if one_staff:
        variables["staff"] = biz.staff_ids[0]
    monday = next_weekday(0)
    noon = as_utc(local(monday, 12))
    async with claims_locked(database_url):
        first = asyncio.create_task(gql.data(AVAILABILITY, variables))
        await until(lambda: reading_claims_blocked(database_url))
        await payload(
            gql,
            ADD_TIME_OFF,
            {
                "organizationId": biz.org_id,
                "staffId": biz.staff_ids[0],
                "start": local(monday, 12),
                "end": local(monday, 13),
            },
            biz.owner.token,
            "addTimeOff",
        )
        second = asyncio.create_task(gql.data(AVAILABILITY, variables))
        await until(lambda: asked.count == 2)  # it awaits the first one's answer
    later = await second
    await first
    assert later["availability"]["slots"]
    assert noon not in [s["start"] for s in later["availability"]["slots"]]


async def test_askers_waiting_on_a_computation_take_its_result_even_when_nothing_is_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the bus is down nothing kept is trusted, yet askers who waited for a
    computation that started after they asked take its result: 16 askers arriving
    while one computation runs cost one more, not sixteen."""
    release = asyncio.Event()
    computed = 0

    async def offer(*args: Any) -> availability.Offer:
        nonlocal computed
        computed += 1
        await release.wait()
        return availability.Offer([], {})

    class Reader:
        def connect(self) -> contextlib.AbstractAsyncContextManager[None]:
            return contextlib.nullcontext()

    monkeypatch.setattr(availability, "availability", offer)
    live = LiveAvailability(Reader(), lambda: False)  # type: ignore[arg-type]
    service = Service(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        name="x",
        description=None,
        duration_minutes=30,
        buffer_before_minutes=0,
        buffer_after_minutes=0,
        slot_interval_minutes=30,
        min_notice_minutes=0,
        max_advance_days=90,
        capacity=1,
        price_amount=0,
        requires_confirmation=False,
    )
    start = datetime.now(UTC) + timedelta(days=7)
    first = asyncio.create_task(live.fresh_window(service, start, start + timedelta(days=1), None))
    await until(lambda: computed == 1)
    others = [
        asyncio.create_task(live.fresh_window(service, start, start + timedelta(days=1), None))
        for _ in range(ASKERS)
    ]
    await asyncio.sleep(0)  # they are all waiting
    release.set()
    windows = await asyncio.gather(first, *others)
    assert computed == 2
    assert all(w is windows[0] for w in windows)
