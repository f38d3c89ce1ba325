"""The outbox relay: hands committed domain events to the bus, each once, oldest first.

Every process runs one. A batch is claimed with `FOR UPDATE SKIP LOCKED` and marked
published in the same transaction only after the bus took it, so with several processes
each row goes out once, and while Redis is down rows wait for it instead of being lost.
Woken by the NOTIFY that `events.record` sends at commit; it also looks every second, in
case a notification was missed (its listening connection was being re-made).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from infra import outbox
from infra.database import driver
from infra.lifecycle import cancelling, pause

log = logging.getLogger(__name__)

BATCH = 500
POLL_EVERY = 1.0
GATHER = 0.02  # seconds

# Claimed and marked in one statement (one round trip, no transaction to hold open).
_CLAIM = """
UPDATE outbox SET published_at = now()
WHERE id IN (
    SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, payload"""
# The bus refused them: they wait for the next try.
_UNMARK = "UPDATE outbox SET published_at = NULL WHERE id = ANY($1::bigint[])"
_FORGET = "DELETE FROM outbox WHERE published_at < $1"


class OutboxRelay:
    def __init__(self, dsn: str, publish: Callable[[bytes], Awaitable[None]]) -> None:
        self.dsn = dsn
        self.publish = publish
        self._wake = asyncio.Event()
        self._failing = False

    async def run(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                # A connection of its own, outside the app's pool: it listens, and its
                # work is nobody's request.
                connection = await asyncpg.connect(self.dsn, timeout=5)
                await connection.add_listener(outbox.CHANNEL, self._notified)
                while True:
                    await self.drain(connection)
                    if self._failing:
                        log.warning("outbox relay resumed")
                        self._failing = False
                    # Not wait_for: in Python 3.11 it swallows a cancellation that
                    # arrives as the wait ends, and the relay would never stop.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_EVERY):
                            await self._wake.wait()
                    # Under load commits come in bursts: a moment's wait lets one batch
                    # (four round trips) carry many of them.
                    await asyncio.sleep(GATHER)
                    self._wake.clear()
            except asyncio.CancelledError:
                raise
            except (
                RedisError,
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ) as error:
                # An outage (Redis, PostgreSQL): the rows wait; say so once per outage.
                if not self._failing:
                    log.warning("outbox relay paused (%s); retrying", error)
                self._failing = True
                await pause(POLL_EVERY)
            except Exception:
                if cancelling():  # the cancellation, disguised on its way out
                    raise asyncio.CancelledError from None
                log.warning("outbox relay failed; retrying", exc_info=True)
                await pause(POLL_EVERY)
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def drain(self, connection: asyncpg.Connection) -> int:
        """Publishes every unpublished row; the number published."""
        sent = 0
        while True:
            rows = sorted(await connection.fetch(_CLAIM, BATCH), key=lambda row: row["id"])
            if not rows:
                return sent
            batch: list[object] = []
            for row in rows:
                payload = _json(row["payload"])
                if row["kind"] == outbox.ROW_KIND and isinstance(payload, list):
                    batch.extend(payload)
                else:
                    batch.append({"kind": row["kind"], "payload": payload})
            try:
                await self.publish(orjson.dumps(batch))
            except (Exception, asyncio.CancelledError):
                # Best effort: if this fails too, the rows stay marked and their events
                # are lost, which the bus's resync (on its return) makes up for.
                with contextlib.suppress(Exception):
                    await connection.execute(_UNMARK, [row["id"] for row in rows])
                raise
            sent += len(rows)
            if len(rows) < BATCH:
                return sent


def _json(value: object) -> object:
    """jsonb as the pool's connections decode it (SQLAlchemy's codec) or as text."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def forget_published(engine: AsyncEngine, before: object) -> None:
    """Published rows are kept a week (later consumers read them too), then dropped."""
    async with engine.begin() as conn:
        await (await driver(conn)).execute(_FORGET, before)
