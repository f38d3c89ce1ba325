"""Alembic environment: async, against DATABASE_URL (or the embedded server)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from domain.availability import tables as availability_tables
from domain.booking import tables as booking_tables
from domain.notifications import feed_tables as notification_feed_tables
from domain.notifications import tables as notification_tables
from domain.notifications import webhook_tables
from domain.payments import tables as payment_tables
from domain.users import tables as users_tables
from infra import outbox
from infra.database import create_engine, libpq_url, managed_by_us, metadata
from infra.settings import Settings

# Every table the code declares joins the one metadata: autogenerate sees them all.
DECLARED = (
    availability_tables,
    booking_tables,
    notification_feed_tables,
    notification_tables,
    webhook_tables,
    payment_tables,
    users_tables,
    outbox,
)
config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, include_name=managed_by_us)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = config.attributes.get("database_url") or libpq_url(Settings.from_env())
    engine = create_engine(url, pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(_main())
