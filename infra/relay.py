"""Runs outbox consumers in this process: woken by the NOTIFY each commit sends, and
looking every second in case one was missed (its connection was being re-made).
Every process runs one; a batch goes to one of them (infra/outbox.py).

`OutboxRelay` is the first consumer, "realtime": it hands committed domain events to
the bus, which carries them to every process. While Redis is down its rows wait for it
instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import orjson
from redis.exceptions import RedisError

from infra import outbox
from infra.lifecycle import cancelling, pause
from infra.outbox import Consumer, Row
from infra.resilience import retrying, within

log = logging.getLogger(__name__)

POLL_EVERY = 1.0
RETRY_FIRST_WAIT = 0.1  # seconds
RETRY_MAX_WAIT = 2.0
GATHER = 0.02  # seconds
OUTAGES = (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class OutboxReader:
    def __init__(self, dsn: str, consumers: Sequence[Consumer], gather: float = GATHER) -> None:
        """`gather`: seconds to wait after a wake-up for more commits to come, so one
        batch carries them (longer for consumers that need not be quick)."""
        self.dsn = dsn
        self.consumers = list(consumers)
        self.gather = gather
        self._wake = asyncio.Event()
        self._failing = False

    async def run(self) -> None:
        """Consumes until cancelled. After a failure (PostgreSQL or Redis away, or
        anything else) it starts over on a new connection, after a random pause of up
        to 0.1 s, 0.2 s, 0.4 s... 2 s: the toolkit's retry with jitter, which never
        retries a cancellation."""
        async for attempt in retrying(
            on=(Exception,),
            attempts=None,
            first_wait=RETRY_FIRST_WAIT,
            max_wait=RETRY_MAX_WAIT,
            sleep=pause,  # ends the loop instead when the task is being cancelled
        ):
            with attempt:
                await self._session()
        raise AssertionError("retrying without a limit ended")  # never: it re-raises

    async def _session(self) -> None:
        """One connection's worth of consuming; returns only by raising."""
        connection: asyncpg.Connection | None = None
        try:
            # A connection of its own, outside the app's pool: it listens, and its
            # work is nobody's request.
            connection = await asyncpg.connect(self.dsn, timeout=5)
            for consumer in self.consumers:
                await outbox.register(connection, consumer)
            await connection.add_listener(outbox.CHANNEL, self._notified)
            while True:
                await self.drain(connection)
                if self._failing:
                    log.warning("outbox consumers resumed")
                    self._failing = False
                # Not wait_for: in Python 3.11 it swallows a cancellation that arrives
                # as the wait ends, and the reader would never stop.
                with contextlib.suppress(TimeoutError):
                    async with within(POLL_EVERY):
                        await self._wake.wait()
                # Under load commits come in bursts: a moment's wait lets one batch
                # carry many of them.
                await asyncio.sleep(self.gather)
                self._wake.clear()
        except OUTAGES as error:
            # An outage (Redis, PostgreSQL): the rows wait; say so once per outage.
            if not self._failing:
                log.warning("outbox consumers paused (%s); retrying", error)
            self._failing = True
            raise
        except Exception:
            if cancelling():  # the cancellation, disguised on its way out
                raise asyncio.CancelledError from None
            log.warning("outbox consumers failed; retrying", exc_info=True)
            raise
        finally:
            if connection is not None and not connection.is_closed():
                connection.terminate()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def drain(self, connection: asyncpg.Connection) -> int:
        """Hands each consumer what it has not passed; the number of rows handed."""
        handed = 0
        for consumer in self.consumers:
            handed += await outbox.drain(connection, consumer)
        return handed


class OutboxRelay(OutboxReader):
    """The consumer "realtime": committed events to the bus, in commit order."""

    NAME = "realtime"

    def __init__(self, dsn: str, publish: Callable[[bytes], Awaitable[None]]) -> None:
        self.publish = publish
        super().__init__(dsn, [Consumer(self.NAME, self._publish, lease_seconds=10.0)])

    async def _publish(self, rows: list[Row]) -> None:
        batch: list[object] = []
        for row in rows:
            if row.kind == outbox.ROW_KIND and isinstance(row.payload, list):
                batch.extend(row.payload)
            else:
                batch.append({"kind": row.kind, "payload": row.payload})
        await self.publish(orjson.dumps(batch))
