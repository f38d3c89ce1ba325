"""The outbox's named consumers: each sees every event once, in commit order, shared
between processes; a transaction that commits late is never skipped; rows stay until
every consumer has passed them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from infra import outbox
from infra.outbox import Consumer, Row
from infra.relay import OutboxReader
from tests.conftest import ADMIN_URL
from tests.processes import own_database

WRITE = "INSERT INTO outbox (kind, payload) VALUES ($1, $2::jsonb)"


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


async def test_two_consumers_each_see_every_event_once_across_two_processes(
    database_url: str,
) -> None:
    kind = f"test-{uuid.uuid4().hex[:8]}"
    seen = Seen(kind)
    names = [f"a-{kind}", f"b-{kind}"]
    # Two readers on connections of their own, as two processes would run them.
    readers = [OutboxReader(database_url, [seen.consumer(n) for n in names]) for _ in range(2)]
    async with connected(database_url) as one, connected(database_url) as other:
        for name in names:
            await outbox.register(one, Consumer(name, seen.consumer(name).handle))
        writers = [write(database_url, kind, range(i, 300, 3)) for i in range(3)]

        async def keep_draining(reader: OutboxReader, connection: asyncpg.Connection) -> None:
            for _ in range(400):
                await reader.drain(connection)
                if all(len(seen.values.get(n, [])) >= 300 for n in names):
                    return
                await asyncio.sleep(0.005)

        await asyncio.gather(
            *writers, keep_draining(readers[0], one), keep_draining(readers[1], other)
        )
    for name in names:
        counts = Counter(seen.values[name])
        assert sorted(counts) == list(range(300)), name
        assert set(counts.values()) == {1}, [v for v, c in counts.items() if c > 1]


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
