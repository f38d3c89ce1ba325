"""The outbox's named consumers: each sees every event once, in commit order, shared
between processes; a transaction that commits late is never skipped; rows stay until
every consumer has passed them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from infra import outbox
from infra.outbox import Consumer, Row
from infra.relay import OutboxReader
from infra.settings import ROOT
from tests.conftest import ADMIN_URL
from tests.processes import STOP_TIMEOUT, own_database

WRITE = "INSERT INTO outbox (kind, payload) VALUES ($1, $2::jsonb)"
EVENTS = 300
FIRST = 10  # of them written before the cross-process test's readers race (> a batch)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


class Seen:
    """What consumers were handed, by consumer name: (reader, value) per row."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.values: dict[str, list[int]] = {}

    def consumer(self, name: str, batch: int = 7) -> Consumer:
        async def handle(rows: list[Row]) -> None:
            await asyncio.sleep(0.001)  # let the other reader try to claim meanwhile
            for row in rows:
                if row.kind == self.kind:
                    assert isinstance(row.payload, dict)
                    self.values.setdefault(name, []).append(int(row.payload["n"]))

        return Consumer(name, handle, batch=batch)


async def write(url: str, kind: str, numbers: range) -> None:
    async with connected(url) as connection:
        for n in numbers:
            await connection.execute(WRITE, kind, orjson.dumps({"n": n}).decode())


async def test_two_consumers_each_see_every_event_once_with_two_readers_in_one_process(
    database_url: str,
) -> None:
    """Two readers on connections of their own in this one process, racing for every
    batch from the first event written on (the test across two processes below starts its
    race only after a handshake)."""
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)
    names = [f"a-{kind}", f"b-{kind}"]
    readers = [OutboxReader(database_url, [seen.consumer(n) for n in names]) for _ in range(2)]
    async with connected(database_url) as one, connected(database_url) as other:
        for name in names:
            await outbox.register(one, Consumer(name, seen.consumer(name).handle))
        writers = [write(database_url, kind, range(i, EVENTS, 3)) for i in range(3)]

        async def keep_draining(reader: OutboxReader, connection: asyncpg.Connection) -> None:
            for _ in range(400):
                await reader.drain(connection)
                if all(len(seen.values.get(n, [])) >= EVENTS for n in names):
                    return
                await asyncio.sleep(0.005)

        await asyncio.gather(
            *writers, keep_draining(readers[0], one), keep_draining(readers[1], other)
        )
    for name in names:
        assert_each_once(name, seen.values[name])


async def test_two_consumers_each_see_every_event_once_across_two_processes(
    database_url: str, tmp_path: Path
) -> None:
    """One reader here, the other in a process of its own (tests/outbox_reader_process.py)
    on the same database and consumers, while the events are written.

    A handshake, not luck, makes each process do some of the work and one consumer change
    hands between them: the other process holds its first batch of one consumer (leased
    to it) until this one has handled the other consumer; then it stays off the held
    consumer until this one has taken it over from there; then both race freely for every
    batch of the rest."""
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)  # what this process handled
    names = [f"a-{kind}", f"b-{kind}"]
    reader = OutboxReader(database_url, [seen.consumer(n) for n in names])

    def here(name: str | None) -> list[int]:
        return seen.values.get(name or "", [])

    async with connected(database_url) as connection:
        for name in names:
            await outbox.register(connection, Consumer(name, seen.consumer(name).handle))
        async with reader_process(database_url, kind, names, tmp_path / "reader.log") as there:

            def everything_seen() -> bool:
                return all(len(here(n)) + len(there.values.get(n, [])) >= EVENTS for n in names)

            async def keep_draining() -> None:
                while not everything_seen():
                    if await reader.drain(connection) == 0:
                        await asyncio.sleep(0.005)  # a poll, not a wait for anything

            await there.until(lambda: there.ready, "registered its consumers")
            # More events than one batch: some of the held consumer's are left after the
            # held batch, for this process to take over.
            await write(database_url, kind, range(FIRST))
            await there.until(lambda: there.holding is not None, "held its first batch")
            held = there.holding
            other = next(n for n in names if n != held)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(keep_draining())
                await there.until(lambda: bool(here(other)), f"let this process handle {other}")
                await there.send("go")
                await there.until(lambda: bool(here(held)), f"let this process take {held} over")
                await there.send("share")
                for i in range(3):
                    tasks.create_task(write(database_url, kind, range(FIRST + i, EVENTS, 3)))
                await there.until(everything_seen, "seen every event handled", seconds=20)
            await there.send("stop")
            await there.until(lambda: there.done, "stopped")
            async with asyncio.timeout(STOP_TIMEOUT):
                assert await there.process.wait() == 0, there.log()
        # Nothing left behind for either consumer: a row reported by one process but not
        # passed would be handed again here, and counted twice below.
        await reader.drain(connection)
    assert there.unexpected == [], there.log()
    assert held is not None
    assert there.values[held]  # the held batch: handled there, then passed from here on
    for name in names:
        assert_each_once(name, here(name) + there.values.get(name, []))


def assert_each_once(name: str, values: list[int]) -> None:
    counts = Counter(values)
    assert sorted(counts) == list(range(EVENTS)), name
    assert set(counts.values()) == {1}, (name, [v for v, c in counts.items() if c > 1])


@dataclass
class ReaderProcess:
    """The reader in the other process, as it reports itself on stdout."""

    process: asyncio.subprocess.Process
    log_path: Path
    values: dict[str, list[int]] = field(default_factory=dict)
    ready: bool = False
    holding: str | None = None
    done: bool = False
    ended: bool = False  # its stdout closed: it exited (or is about to)
    unexpected: list[bytes] = field(default_factory=list)

    def log(self) -> str:
        """What it printed on stderr."""
        return self.log_path.read_text(errors="replace")

    async def follow(self) -> None:
        """Reads its reports until its stdout closes."""
        assert self.process.stdout is not None
        try:
            async for line in self.process.stdout:
                try:
                    self._note(orjson.loads(line))
                except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
                    self.unexpected.append(line)
        finally:
            self.ended = True

    def _note(self, message: dict[str, Any]) -> None:
        match message["event"]:
            case "ready":
                self.ready = True
            case "handled":
                self.values.setdefault(message["consumer"], []).extend(message["values"])
            case "holding":
                self.holding = message["consumer"]
            case "done":
                self.done = True
            case _:
                raise ValueError(message)

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(f"{command}\n".encode())
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self.process.wait()
            raise AssertionError(
                f"the reader process exited ({self.process.returncode}) before {command!r}:\n"
                f"{self.log()}"
            ) from None

    async def until(self, condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
        """Waits until `condition()`: fails when the process ends first, or after
        `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not condition():
            if self.ended:
                await self.process.wait()
                raise AssertionError(
                    f"the reader process exited ({self.process.returncode}) before it "
                    f"{what}:\n{self.log()}"
                )
            if loop.time() > deadline:
                raise AssertionError(
                    f"the reader process has not {what} in {seconds} s:\n{self.log()}"
                )
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def reader_process(
    database_url: str, kind: str, names: list[str], log_path: Path
) -> AsyncIterator[ReaderProcess]:
    """`python -m tests.outbox_reader_process` on `database_url`, draining `names`;
    killed and reaped at the end unless it has exited by then."""
    args = ["--kind", kind]
    for name in names:
        args += ["--consumer", name]
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.outbox_reader_process",
            *args,
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    there = ReaderProcess(process, log_path)
    following = asyncio.create_task(there.follow())
    try:
        yield there
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        assert process.stdin is not None
        process.stdin.close()
        await process.wait()
        await asyncio.wait({following}, timeout=STOP_TIMEOUT)
        if not following.done():
            following.cancel()


async def test_a_transaction_that_commits_late_is_not_skipped(database_url: str) -> None:
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)
    name = f"late-{kind}"
    consumer = seen.consumer(name)
    async with connected(database_url) as reader, connected(database_url) as slow:
        await outbox.register(reader, consumer)
        # The slow transaction takes its number first and writes, but commits last.
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute(WRITE, kind, '{"n": 1}')
        await write(database_url, kind, range(2, 4))
        await outbox.drain(reader, consumer)
        assert seen.values.get(name, []) == []  # 2 and 3 wait behind the running one
        await transaction.commit()
        await outbox.drain(reader, consumer)
    assert seen.values[name] == [1, 2, 3]


async def test_rows_stay_until_every_consumer_passed_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A database of this test's own: retention looks at every consumer registered.
    async with own_database() as database_url:
        await rows_stay_until_every_consumer_passed_them(database_url, caplog)


async def rows_stay_until_every_consumer_passed_them(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)
    fast, slow = seen.consumer(f"fast-{kind}"), seen.consumer(f"slow-{kind}")
    async with connected(database_url) as connection:
        for consumer in (fast, slow):
            await outbox.register(connection, consumer)
        await write(database_url, kind, range(5))
        ours = "SELECT count(*) FROM outbox WHERE kind = $1"
        await outbox.drain(connection, fast)
        await outbox.forget(connection, datetime.now(UTC) - timedelta(days=7))
        assert await connection.fetchval(ours, kind) == 5  # the slow one has not passed them
        await outbox.drain(connection, slow)
        await outbox.forget(connection, datetime.now(UTC) - timedelta(days=7))
        assert await connection.fetchval(ours, kind) == 0
        # Past the age bound rows go whoever has not read them, and that is logged.
        await write(database_url, kind, range(5, 7))
        caplog.set_level(logging.WARNING, logger="infra.outbox")
        await outbox.forget(connection, datetime.now(UTC) + timedelta(seconds=1))
        assert await connection.fetchval(ours, kind) == 0
        assert "fell behind" in caplog.text
        assert fast.name in caplog.text
        assert slow.name in caplog.text


async def test_a_batch_whose_handler_fails_is_handed_again(database_url: str) -> None:
    kind = f"test-{uuid.uuid4().hex[:8]}"
    handed: list[list[int]] = []
    fail = True

    async def handle(rows: list[Row]) -> None:
        nonlocal fail
        values = [int(r.payload["n"]) for r in rows if r.kind == kind]  # type: ignore[index]
        if fail:
            fail = False
            raise RuntimeError("the bus is away")
        handed.append(values)

    consumer = Consumer(f"flaky-{kind}", handle)
    async with connected(database_url) as connection:
        await outbox.register(connection, consumer)
        await write(database_url, kind, range(3))
        with pytest.raises(RuntimeError):
            await outbox.drain(connection, consumer)
        await outbox.drain(connection, consumer)
    assert handed == [[0, 1, 2]]


async def test_transactions_that_cannot_write_the_outbox_hold_nothing_back(
    database_url: str,
) -> None:
    """A long report in this database (it writes nothing) and a writing transaction in
    another database on the same server cannot add rows to this outbox: rows committed
    meanwhile are handed at once (a nightly pg_dump must not freeze live updates)."""
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)
    consumer = seen.consumer(f"busy-{kind}")
    async with (
        connected(database_url) as reader,
        connected(database_url) as report,
        connected(ADMIN_URL) as elsewhere,
    ):
        await outbox.register(reader, consumer)
        reporting = report.transaction(isolation="repeatable_read")
        await reporting.start()
        await report.fetchval("SELECT count(*) FROM outbox")
        writing = elsewhere.transaction()
        await writing.start()
        await elsewhere.execute("CREATE TEMP TABLE busy (n int)")  # takes a transaction id
        try:
            await write(database_url, kind, range(3))
            await outbox.drain(reader, consumer)
            assert seen.values.get(consumer.name) == [0, 1, 2]
        finally:
            await reporting.rollback()
            await writing.rollback()


async def test_a_transaction_that_commits_while_a_claim_runs_is_not_skipped(
    database_url: str,
) -> None:
    """The claim's snapshot sees a writer still running; by the time the claim looks at
    the running transactions, the writer has committed. Its row is invisible to the claim
    while a younger transaction's row is not: reading the younger one would pass the
    older one for good (a full CI run lost an event this way). The claim's snapshot is
    held open here (repeatable read) to make that moment last."""
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)
    name = f"racing-{kind}"
    consumer = seen.consumer(name)
    async with (
        connected(database_url) as reader,
        connected(database_url) as older,
        connected(database_url) as younger,
    ):
        await outbox.register(reader, consumer)
        first = older.transaction()
        await first.start()
        await older.execute(WRITE, kind, '{"n": 1}')  # its number first
        await younger.execute(WRITE, kind, '{"n": 2}')  # commits at once
        claim = reader.transaction(isolation="repeatable_read")
        await claim.start()
        await reader.fetchval("SELECT 1")  # the claim's snapshot: 1 running, 2 committed
        await first.commit()
        await outbox.drain(reader, consumer)
        await claim.commit()
        await outbox.drain(reader, consumer)
    assert seen.values[name] == [1, 2]
