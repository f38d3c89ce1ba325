"""Work stops when the request ends: a time limit per operation, a client that goes
away cancels its execution, and one request holds at most a few pooled connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from schema.operation_limits import Documents, Limits
from schema.root import schema
from tests.business import CREATE_SERVICE, Business, create_business, payload
from tests.conftest import GraphQLClient, Server
from tests.test_availability_api import local, next_weekday
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, socket

LOOSE = Limits(depth=1_000, aliases=1_000, tokens=100_000, directives=1_000, cost=10**12)


@contextlib.asynccontextmanager
async def loosened(server: Server, **settings: Any) -> AsyncIterator[None]:
    """The test server with no query limits and the given settings, for this block."""
    state = server.app_state
    hub = state.realtime  # WebSocket operations are checked by the hub's own reference
    before, documents, over_ws = state.settings, state.documents, hub.documents
    state.settings = before.model_copy(update=settings)
    state.documents = hub.documents = Documents(schema._schema, LOOSE)
    try:
        yield
    finally:
        state.settings, state.documents, hub.documents = before, documents, over_ws


async def with_services(gql: GraphQLClient, count: int) -> Business:
    biz = await create_business(gql)
    for i in range(count - 1):
        await payload(
            gql,
            CREATE_SERVICE,
            {"organizationId": biz.org_id, "name": f"Extra {i}", "durationMinutes": 30},
            biz.owner.token,
            "createService",
        )
    return biz


def exponential(slug: str, levels: int, first: int) -> str:
    """Every organization lists its services, each naming its organization again."""
    inner = "name"
    for _ in range(levels):
        inner = (
            f"services(first: {first}) {{ edges {{ node {{ name organization {{ {inner} }} }} }} }}"
        )
    return f'{{ organization(slug: "{slug}") {{ {inner} }} }}'


async def settled(server: Server, tasks_before: int, seconds: float = 3.0) -> None:
    """Until nothing of a request is left: no task, no checked-out connection; and then
    no statement runs on."""
    engine = server.app_state.engine
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(asyncio.all_tasks()) <= tasks_before and engine.pool.checkedout() == 0:
            server.counter.start()
            await asyncio.sleep(0.3)
            assert server.counter.stop() == 0, server.counter.statements[:3]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"{len(asyncio.all_tasks())} tasks (was {tasks_before}),"
        f" {engine.pool.checkedout()} connections checked out"
    )


async def test_an_operation_over_its_time_limit_is_stopped(
    server: Server, gql: GraphQLClient
) -> None:
    biz = await with_services(gql, 6)
    tasks_before = len(asyncio.all_tasks())
    async with loosened(server, operation_timeout_seconds=0.5):
        started = time.perf_counter()
        body = await gql.raw(exponential(biz.slug, 6, 6))
        elapsed = time.perf_counter() - started
    assert body["data"] is None, str(body)[:300]
    [error] = body["errors"]
    assert error["extensions"]["code"] == "TIMEOUT", error
    assert "longer than 0.5 s" in error["message"]
    assert elapsed < 2.0, elapsed
    await settled(server, tasks_before)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_query_over_websocket_has_the_same_time_limit(
    server: Server, gql: GraphQLClient, protocol: str
) -> None:
    """realtime/websocket.py bounds a query sent as a `subscribe` (or legacy `start`)
    message like one over HTTP: answered TIMEOUT, then nothing of it runs on."""
    biz = await with_services(gql, 6)
    async with socket(server.base_url, protocol) as ws:
        await ws.init()
        tasks_before = len(asyncio.all_tasks())  # the open socket's own tasks included
        async with loosened(server, operation_timeout_seconds=0.5):
            started = time.perf_counter()
            subscription_id = await ws.subscribe(exponential(biz.slug, 6, 6), {})
            # Without the limit the query runs on for many seconds: this wait fails.
            body = await ws.data(seconds=3.0)
            elapsed = time.perf_counter() - started
            assert await ws.next() == {"type": "complete", "id": subscription_id}
        assert body["data"] is None, str(body)[:300]
        [error] = body["errors"]
        assert error["extensions"]["code"] == "TIMEOUT", error
        assert "longer than 0.5 s" in error["message"]
        assert elapsed < 2.0, elapsed
        await settled(server, tasks_before)
        # The connection is still usable afterwards.
        await ws.subscribe("{ __typename }", {})
        assert (await ws.data())["data"] == {"__typename": "Query"}


async def test_a_client_that_goes_away_cancels_its_execution(
    server: Server, gql: GraphQLClient
) -> None:
    biz = await with_services(gql, 6)
    tasks_before = len(asyncio.all_tasks())
    async with loosened(server, operation_timeout_seconds=60.0):
        server.counter.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=0.5) as http:
            with contextlib.suppress(httpx.ReadTimeout):
                await http.post("/graphql", json={"query": exponential(biz.slug, 6, 6)})
                raise AssertionError("the query should still have been running")
        assert server.counter.stop() > 10  # it was running
        await settled(server, tasks_before)


async def test_one_request_holds_a_few_connections_at_most(
    server: Server, gql: GraphQLClient
) -> None:
    """25 organizations' services load side by side, yet through 3 connections."""
    biz = await create_business(gql)
    wide = " ".join(
        f'o{i}: organization(slug: "{biz.slug}") {{ services(first: {i + 1}) {{ '
        f"edges {{ node {{ name }} }} }} }}"
        for i in range(25)
    )
    pool = server.app_state.engine.pool
    most = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, pool.checkedout())
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        data = await gql.data(f"{{ {wide} }}")
    finally:
        done.set()
        await watcher
    assert len(data) == 25
    assert 1 <= most <= server.app_state.settings.request_connections == 3, most


async def test_others_are_answered_while_heavy_allowed_queries_run(
    server: Server, gql: GraphQLClient
) -> None:
    """Five 62-day windows of five staff, with every slot's staff: just under the cost
    limit (about 88,000), twice at once."""
    biz = await create_business(gql, staff_count=5)
    monday = next_weekday(0)
    windows = " ".join(
        f'w{i}: availability(serviceId: "{biz.service_id}", start: "{local(monday, 0)}", '
        f'end: "{local(monday + timedelta(days=61 - i), 0)}") '
        "{ slots { start end staff { id name } } days { date slots { start } } }"
        for i in range(5)
    )
    small = (
        f'{{ availability(serviceId: "{biz.service_id}", start: "{local(monday, 9)}", '
        f'end: "{local(monday, 10)}") {{ slots {{ start }} }} }}'
    )
    heavy = [asyncio.create_task(gql.raw(f"{{ {windows} }}")) for _ in range(2)]
    await asyncio.sleep(0.05)
    latencies = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as other:
        for query in ("{ __typename }", small, "{ __typename }", small):
            started = time.perf_counter()
            response = await other.post("/graphql", json={"query": query})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            assert "errors" not in response.json()
    answers = await asyncio.gather(*heavy)
    assert all("errors" not in a for a in answers), str(answers)[:300]
    assert max(latencies) < 1.0, latencies
