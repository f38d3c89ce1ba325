"""The outbox: rows written in the transaction that makes a change (domain/events.py
is the one writer), read after the commit by named consumers (infra/relay.py runs
them; the realtime relay is the first).

Each consumer keeps a durable position (txid, id) in `outbox_consumers`. Rows are read
in transaction-number order and only below the oldest writing transaction the read's
own snapshot saw running: a transaction that commits late has a smaller number than
rows already read by then only if it was running when they were read, and rows of
running transactions are never read, so no row is ever skipped. That includes one that
commits while the read runs (invisible to its snapshot, no longer among the running):
the horizon comes from the snapshot itself, not from a later look at who is running.
Transactions that write nothing (a long report, pg_dump) have no number and hold
nothing back; other databases' running ones are left out by name.
A process claims a consumer for one batch with `FOR UPDATE SKIP LOCKED` and a lease,
hands the rows over, then moves the position on: with many processes each batch is
handled by one of them, in order. Delivery is at least once (a handler that outlives
its lease may see a batch handled twice), so handlers are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson
from sqlalchemy import BigInteger, Column, DateTime, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import base as postgresql_types
from sqlalchemy.types import UserDefinedType

from infra.database import metadata

log = logging.getLogger(__name__)

# NOTIFY channel: wakes the consumers at commit.
CHANNEL = "outbox"
# One row per transaction, holding all its events: kind ROW_KIND, the payload the list
# of {kind, payload}.
ROW_KIND = "events"


class Xid8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction number (read as text here)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "XID8"


# Reflection (Alembic's autogenerate) knows the type by name.
postgresql_types.ischema_names["xid8"] = Xid8


outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("txid", Xid8(), nullable=False, server_default=func.pg_current_xact_id()),
)

outbox_consumers = Table(
    "outbox_consumers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("txid", Xid8(), nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    txid: str
    kind: str
    payload: object


Handle = Callable[[list[Row]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Consumer:
    """A named reader of the outbox with its own durable position."""

    name: str
    handle: Handle  # raises to have the batch again later
    batch: int = 500
    lease_seconds: float = 30.0  # one process has the consumer for one batch this long


# A new consumer starts at the present: rows of transactions still running (at or past
# the horizon) are still ahead of it.
_REGISTER = """
INSERT INTO outbox_consumers (name, txid, id)
VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()), 0)
ON CONFLICT (name) DO NOTHING"""

# Claimed only when there is something to read; claim and read in one round trip.
_CLAIM = """
WITH snap AS (SELECT pg_current_snapshot() AS s),
elsewhere AS (  -- transactions running in other databases now (32-bit xids)
    SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
    WHERE datname IS DISTINCT FROM current_database() AND backend_xid IS NOT NULL),
horizon AS (  -- the oldest transaction our snapshot saw running, unless it is elsewhere's
    SELECT LEAST(
        (SELECT min(x::text::bigint) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE x::text::bigint & 4294967295 NOT IN (SELECT xid FROM elsewhere)),
        (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap))::text::xid8 AS xmin),
claimed AS (
    UPDATE outbox_consumers c SET leased_until = now() + make_interval(secs => $2)
    FROM horizon h
    WHERE c.name = (
        SELECT name FROM outbox_consumers
        WHERE name = $1 AND (leased_until IS NULL OR leased_until < now())
        FOR UPDATE SKIP LOCKED)
      AND EXISTS (SELECT FROM outbox o WHERE (o.txid, o.id) > (c.txid, c.id) AND o.txid < h.xmin)
    RETURNING c.txid, c.id, h.xmin)
SELECT o.id, o.txid::text AS txid, o.kind, o.payload
FROM claimed c JOIN outbox o ON (o.txid, o.id) > (c.txid, c.id) AND o.txid < c.xmin
ORDER BY o.txid, o.id
LIMIT $3"""

_ADVANCE = """
UPDATE outbox_consumers
SET txid = $2::text::xid8, id = $3, leased_until = NULL, updated_at = now()
WHERE name = $1"""

_RELEASE = "UPDATE outbox_consumers SET leased_until = NULL WHERE name = $1"

# Rows every consumer has passed.
_FORGET_PASSED = """
WITH slowest AS (SELECT txid, id FROM outbox_consumers ORDER BY txid, id LIMIT 1)
DELETE FROM outbox o USING slowest s WHERE (o.txid, o.id) <= (s.txid, s.id)"""
_BEHIND = """
SELECT c.name FROM outbox_consumers c
WHERE EXISTS (
    SELECT FROM outbox o WHERE o.created_at < $1 AND (o.txid, o.id) > (c.txid, c.id))"""
_FORGET_OLD = "DELETE FROM outbox WHERE created_at < $1"


async def register(connection: asyncpg.Connection, consumer: Consumer) -> None:
    await connection.execute(_REGISTER, consumer.name)


async def drain(connection: asyncpg.Connection, consumer: Consumer) -> int:
    """Hands the consumer every row it has not passed, batch by batch; the number
    handed. Returns at once when another process holds the consumer."""
    handed = 0
    while True:
        found = await connection.fetch(
            _CLAIM, consumer.name, consumer.lease_seconds, consumer.batch
        )
        if not found:
            return handed
        rows = [Row(r["id"], r["txid"], r["kind"], _json(r["payload"])) for r in found]
        try:
            await consumer.handle(rows)
        except (Exception, asyncio.CancelledError):
            # Not passed: the next claim (here or in another process) has them again.
            # If that fails too, the lease runs out by itself.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await connection.execute(_RELEASE, consumer.name)
            raise
        last = rows[-1]
        await connection.execute(_ADVANCE, consumer.name, last.txid, last.id)
        handed += len(rows)
        if len(rows) < consumer.batch:
            return handed


async def forget(connection: asyncpg.Connection, older_than: datetime) -> None:
    """Drops the rows every consumer has passed, and the rows older than `older_than`
    whether or not they have (logged: a consumer that far behind lost them)."""
    await connection.execute(_FORGET_PASSED)
    behind = [r["name"] for r in await connection.fetch(_BEHIND, older_than)]
    if behind:
        log.warning("outbox consumers %s fell behind: rows before %s dropped", behind, older_than)
    await connection.execute(_FORGET_OLD, older_than)


def _json(value: object) -> object:
    """jsonb as text (asyncpg's default) or already decoded."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value
