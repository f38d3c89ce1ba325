"""Background loops end when cancelled, whatever they were doing, and shutdown never waits
on one that does not: otherwise Ctrl-C stops at "Waiting for application shutdown"."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import background, events
from infra.database import create_engine
from infra.jobs import JobRunner
from infra.lifecycle import shut_down
from infra.relay import OutboxRelay
from tests.processes import own_database

ENDS = 3.0  # seconds a cancelled loop may take to end


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    events.on_commit(engine, lambda batch: None)  # as the app's lifespan does
    yield engine
    await engine.dispose()


async def wait_for_lock_wait(url: str) -> None:
    """Until some session of this database waits for a lock."""
    monitor = await asyncpg.connect(url)
    try:
        for _ in range(200):
            waiting = await monitor.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("nobody waited for the lock")
    finally:
        await monitor.close()


@pytest.mark.parametrize("disguised", [False, True], ids=["app-listeners", "disguised"])
async def test_the_job_worker_ends_when_stopped_mid_statement(disguised: bool) -> None:
    """The reported hang: cancelled inside `engine.begin()`, the rollback on the way out
    raised PendingRollbackError in place of the CancelledError and the sweeper went on
    forever. The sweep is a job now: stopping the worker while it waits on a lock ends
    it within the bound, even when some listener turns the cancellation into another
    error (`disguised`). On a database of its own: the test server's worker must not
    take the job."""
    async with own_database() as database_url:
        engine = create_engine(database_url, pool_size=2)
        events.on_commit(engine, lambda batch: None)  # as the app's lifespan does
        try:
            await worker_ends_mid_statement(engine, database_url, disguised)
        finally:
            await engine.dispose()


async def worker_ends_mid_statement(
    engine: AsyncEngine, database_url: str, disguised: bool
) -> None:
    if disguised:
        event.listen(engine.sync_engine, "rollback", lambda conn: conn.info)
    locker = await asyncpg.connect(database_url)
    runner = JobRunner(database_url, [background.register])
    try:
        async with locker.transaction():
            # The sweep's first statement (UPDATE bookings) waits behind this lock.
            await locker.execute("LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE")
            await runner.start({"engine": engine})
            await runner.app.configure_task(name="booking.sweep").defer_async(timestamp=0)
            await wait_for_lock_wait(database_url)
            stopping = asyncio.create_task(runner.stop())
            done, _ = await asyncio.wait({stopping}, timeout=ENDS)
        assert done, "the job worker did not stop"
    finally:
        await locker.close()


async def test_the_relay_ends_when_cancelled_as_a_notification_arrives() -> None:
    """Python 3.11's `wait_for` returns the result instead of raising when the task is
    cancelled just as the awaited thing finishes: the relay, waiting for a NOTIFY with
    it, then went on relaying after `Hub.stop` cancelled it."""

    async def publish(data: bytes) -> None:
        pass

    async with own_database() as url:  # its own outbox: no one else's events drained
        relay = OutboxRelay(url, publish)
        task = asyncio.create_task(relay.run())
        try:
            while not relay._wake._waiters:  # listening, waiting for a notification
                assert not task.done(), task
                await asyncio.sleep(0.01)
            relay._wake.set()  # a notification arrives...
            task.cancel()  # ...in the same instant as the shutdown
            done, _ = await asyncio.wait({task}, timeout=ENDS)
            assert done, "the relay swallowed its cancellation"
            assert task.cancelled()
        finally:
            task.cancel()
            await asyncio.wait({task}, timeout=ENDS)


async def test_shutdown_gives_up_on_a_step_that_does_not_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="booking")
    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    ran: list[str] = []

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # what must never hang us
                await asyncio.sleep(0.01)

    async def failing() -> None:
        raise RuntimeError("the pool could not close")

    async def last() -> None:
        ran.append("last")

    steps: list[tuple[str, Any]] = [("stubborn", stubborn), ("failing", failing), ("last", last)]
    began = loop.time()
    try:
        await shut_down(steps, 0.3)
        took = loop.time() - began
    finally:
        release.set()
    assert 0.3 <= took < 1.0
    assert ran == ["last"]  # the steps after it still run, with what time is left
    messages = [r.getMessage() for r in caplog.records if r.name == "booking"]
    assert messages == [
        "shutdown: gave up on stubborn (0.3 s for all steps)",
        "shutdown: failing failed",
    ]
