"""The one runner for background work (infra/jobs.py): a periodic job runs once per tick
however many processes run a worker, and a queued job that fails is retried."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import procrastinate

from domain import background
from infra.database import create_engine
from infra.jobs import JobRunner
from tests.conftest import GraphQLClient, Server
from tests.processes import own_database

ticks: Counter[int] = Counter()
attempts: list[int] = []


async def tick(timestamp: int) -> None:
    ticks[timestamp] += 1


async def flaky(n: int) -> None:
    attempts.append(n)
    if len(attempts) < 2:
        raise RuntimeError("the provider is away")


def register(app: procrastinate.App) -> None:
    app.periodic(cron="* * * * * *")(app.task(name="test.tick")(tick))  # every second
    retry = procrastinate.RetryStrategy(max_attempts=3, wait=0)
    app.task(name="test.flaky", retry=retry)(flaky)


async def test_a_periodic_job_runs_once_per_tick_with_two_workers() -> None:
    # A database of its own: the test server's worker would take jobs it does not know.
    async with own_database() as database_url:
        await periodic_job_runs_once_per_tick(database_url)


async def periodic_job_runs_once_per_tick(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    # Two workers, as two processes run them.
    runners = [JobRunner(database_url, [register]) for _ in range(2)]
    try:
        for runner in runners:
            await runner.start({"engine": engine})
        started = time.time()
        await asyncio.sleep(3.5)
    finally:
        for runner in runners:
            await runner.stop()
        await engine.dispose()
    ours = {t: n for t, n in ticks.items() if t >= started}
    assert len(ours) >= 2, ticks
    assert set(ours.values()) == {1}, ours  # never twice for one tick


async def test_a_queued_job_that_fails_is_retried() -> None:
    async with own_database() as database_url:
        await queued_job_is_retried(database_url)


async def queued_job_is_retried(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    runner = JobRunner(database_url, [register])
    try:
        await runner.start({"engine": engine})
        await runner.app.configure_task(name="test.flaky").defer_async(n=7)
        for _ in range(100):
            if len(attempts) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
        await engine.dispose()
    assert attempts == [7, 7]


def test_the_runner_has_the_sweeps_as_periodic_jobs() -> None:
    runner = JobRunner("postgresql://unused", [background.register])
    periodic = sorted(p.task.name for p in runner.app.periodic_registry.periodic_tasks.values())
    assert periodic == [
        "booking.sweep",
        "notifications.forget",
        "outbox.forget",
        "payments.reconcile",
    ]


async def test_a_job_running_meanwhile_is_not_counted_as_a_requests_statements(
    server: Server, gql: GraphQLClient, database_url: str
) -> None:
    """Query-count tests pin a request's statements; the periodic sweep, landing in the
    same window, must not be added to them (a CI run failed on exactly that)."""
    jobs: JobRunner = server.app_state.jobs
    server.counter.start()
    job_id = await jobs.app.configure_task("booking.sweep").defer_async(timestamp=0)
    await until_done(database_url, job_id)
    assert server.counter.stop() == 0, server.counter.statements
    server.counter.start()
    await gql.raw('{ organization(slug: "nobody-here") { name } }')
    assert server.counter.stop() >= 1  # a request's statements are still counted


async def until_done(database_url: str, job_id: int) -> None:
    """Polled on a connection of the test's own, outside the server's engine."""
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(200):
            status = await conn.fetchval(
                "SELECT status FROM procrastinate_jobs WHERE id = $1", job_id
            )
            if status in (None, "succeeded"):  # successful jobs are deleted
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"job {job_id} still {status}")
