"""A request cancelled while its transaction was beginning (its client went away, its
time ran out) must not leave the pooled connection inside a transaction nobody knows
of: SQLAlchemy's asyncpg adapter records a transaction only once BEGIN has answered, so
such a connection went back to the pool still in it, and every later request on it ran
in a SAVEPOINT whose "commit" was a RELEASE: bookings answered as made, then lost."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from sqlalchemy import text

from infra.database import create_engine, driver


async def test_a_connection_cancelled_while_beginning_is_not_reused(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)  # one connection: the next gets it
    table = f"t_{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (n int)"))

        async with engine.connect() as conn:
            assert conn.sync_connection is not None
            adapted: Any = conn.sync_connection.connection.dbapi_connection
            beginning = asyncio.ensure_future(adapted._start_transaction())
            await asyncio.sleep(0)  # BEGIN is sent; its answer not read yet
            beginning.cancel()
            await asyncio.wait({beginning})
            raw = adapted.driver_connection
            assert raw._top_xact is not None, "the cancellation did not land mid-BEGIN"

        # The next unit of work on the pool's one connection commits for real.
        async with engine.begin() as conn:
            await (await driver(conn)).execute(f"INSERT INTO {table} VALUES (1)")
        observer = await asyncpg.connect(database_url)
        try:
            assert await observer.fetchval(f"SELECT count(*) FROM {table}") == 1
        finally:
            await observer.close()
    finally:
        await engine.dispose()  # first: a connection left in a transaction holds locks
        cleaner = await asyncpg.connect(database_url)
        await cleaner.execute(f"DROP TABLE IF EXISTS {table}")
        await cleaner.close()
