"""PostgreSQL goes away and comes back under a running app: requests fail cleanly while it
is down, the pool heals by itself once it is back, and a PostgreSQL that stops answering
cannot keep the app from shutting down. Against a cluster of the test's own."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from infra.database import create_engine
from tests.business import PASSWORD, SIGN_UP
from tests.postgres_cluster import PostgresCluster, postgres_cluster
from tests.processes import running_apps

QUERY = '{ organization(slug: "no-such-business") { name } }'
# What a failing request may take while PostgreSQL is down: it refuses at once.
PROMPT = 3.0
# From PostgreSQL accepting connections again to the app answering from it.
RECOVERY = 2.0
OUTAGE_CODES = {"SERVICE_UNAVAILABLE"}


@pytest.fixture
async def cluster() -> AsyncIterator[PostgresCluster]:
    async with postgres_cluster() as cluster:
        yield cluster


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_the_pool_replaces_connections_the_server_closed(
    cluster: PostgresCluster, mode: str
) -> None:
    """asyncpg hears the server go (its goodbye, or the EOF) while the connection idles in
    the pool, so the checkout hook replaces it: the first request after the restart works,
    with no pre-ping."""
    engine = create_engine(cluster.url, pool_size=1)
    try:
        async with engine.connect() as conn:
            before = await conn.scalar(text("select pg_backend_pid()"))
        await cluster.stop(mode)
        await cluster.start()
        async with engine.connect() as conn:
            after = await conn.scalar(text("select pg_backend_pid()"))
        assert after != before
    finally:
        await engine.dispose()


@dataclass
class Outcome:
    sent: float  # monotonic
    took: float
    operation: str
    status: int | None = None  # None: no HTTP answer at all
    codes: list[str] = field(default_factory=list)
    failure: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.codes and not self.failure


async def ask(http: httpx.AsyncClient, operation: str) -> Outcome:
    if operation == "query":
        body: dict[str, Any] = {"query": QUERY}
    else:
        email = f"restart-{uuid.uuid4().hex[:10]}@example.com"
        body = {
            "query": SIGN_UP,
            "variables": {"input": {"email": email, "password": PASSWORD, "name": "Restart"}},
        }
    sent = time.monotonic()
    outcome = Outcome(sent, 0.0, operation)
    try:
        response = await http.post("/graphql", json=body)
        outcome.status = response.status_code
        answer = response.json()
        outcome.codes = [e.get("extensions", {}).get("code") for e in answer.get("errors", [])]
        if operation == "signUp" and not outcome.codes and answer["data"]["signUp"]["errors"]:
            outcome.failure = str(answer["data"]["signUp"]["errors"])
    except (httpx.HTTPError, ValueError) as error:
        outcome.failure = repr(error)
    outcome.took = time.monotonic() - sent
    return outcome


async def load(http: httpx.AsyncClient, outcomes: list[Outcome]) -> None:
    """A few queries a second and a sign-up now and then, one after another."""
    for i in range(10_000):
        outcomes.append(await ask(http, "signUp" if i % 4 == 0 else "query"))
        await asyncio.sleep(0.05)


async def readiness(http: httpx.AsyncClient) -> int:
    return (await http.get("/readyz")).status_code


async def test_requests_fail_cleanly_during_a_restart_and_recover_by_themselves(
    cluster: PostgresCluster,
) -> None:
    async with (
        running_apps(cluster.url, count=1, redis_url=None) as apps,
        httpx.AsyncClient(base_url=apps.processes[0].base_url, timeout=10) as http,
    ):
        outcomes: list[Outcome] = []
        loader = asyncio.create_task(load(http, outcomes))
        try:
            await asyncio.sleep(1.0)
            stopping = time.monotonic()
            await cluster.stop("fast")
            down = time.monotonic()
            await asyncio.sleep(1.5)
            assert await readiness(http) == 503
            starting = time.monotonic()
            await cluster.start()
            up = time.monotonic()
            while await readiness(http) != 200:
                assert time.monotonic() - up < RECOVERY, "not ready again"
                await asyncio.sleep(0.05)
            ready = time.monotonic()
            await asyncio.sleep(2.0)
        finally:
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
        log = apps.processes[0].log()

    # Every request got an HTTP answer, promptly: no resets, no 5xx, no hangs.
    assert [o for o in outcomes if o.status != 200] == []
    assert max(o.took for o in outcomes) < PROMPT, max(outcomes, key=lambda o: o.took)
    before = [o for o in outcomes if o.sent + o.took < stopping]
    during = [o for o in outcomes if down <= o.sent and o.sent + o.took < starting]
    after = [o for o in outcomes if o.sent >= ready]
    assert before
    assert all(o.ok for o in before), before
    # While it is down: a GraphQL error with a code, not a crash.
    assert {o.operation for o in during} == {"query", "signUp"}, during
    assert all(o.codes and set(o.codes) <= OUTAGE_CODES for o in during), during
    # Back: everything works again, the sign-ups too, without restarting the app.
    assert {o.operation for o in after} == {"query", "signUp"}, after
    assert all(o.ok for o in after), [o for o in after if not o.ok]
    assert "PendingRollbackError" not in log, log


async def test_shutdown_is_bounded_when_postgresql_stops_answering(
    cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen PostgreSQL never answers the pool's goodbyes: closing it would wait
    forever. The lifespan gives up after SHUTDOWN_TIMEOUT_SECONDS, says so, and exits."""
    bound = 1.0
    monkeypatch.setenv("SHUTDOWN_TIMEOUT_SECONDS", str(bound))
    async with running_apps(cluster.url, count=1, redis_url=None) as apps:
        process = apps.processes[0]
        async with httpx.AsyncClient(base_url=process.base_url, timeout=10) as http:
            for _ in range(3):  # pooled connections to close at shutdown
                assert (await ask(http, "query")).ok
        cluster.freeze()
        try:
            began = time.monotonic()
            process.popen.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.popen.wait, 10)
            took = time.monotonic() - began
        finally:
            cluster.thaw()
        # uvicorn raises the signal again once it is done: dying of it is the clean end.
        assert code == -signal.SIGTERM, process.log()
        assert took < bound + 2.0, (took, process.log())
        assert "shutdown: gave up on the database pool" in process.log(), process.log()
