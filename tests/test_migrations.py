"""Every table the code declares is the table the migrations make: Alembic's
autogenerate, run against the migrated test database, proposes no table or column
change. (Indexes, constraint names and exclusion constraints are the hand-written
migrations' own: the declarations are what queries need, not the DDL.)"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from domain.availability import tables as availability_tables
from domain.booking import tables as booking_tables
from domain.notifications import feed_tables, webhook_tables
from domain.notifications import tables as notification_tables
from domain.payments import tables as payment_tables
from domain.users import tables as users_tables
from infra import outbox
from infra.database import managed_by_us, metadata, sqlalchemy_url
from infra.settings import ROOT

DECLARED = (
    availability_tables,
    booking_tables,
    notification_tables,
    webhook_tables,
    feed_tables,
    payment_tables,
    users_tables,
    outbox,
)  # into the metadata


TABLES_AND_COLUMNS = {"add_table", "remove_table", "add_column", "remove_column"}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_name": managed_by_us})
    found = []
    for difference in compare_metadata(context, metadata):
        # Column changes come grouped in a list of ("modify_type", ...) and the like.
        for item in difference if isinstance(difference, list) else [difference]:
            if item[0] in TABLES_AND_COLUMNS or item[0] in ("modify_type", "modify_nullable"):
                found.append(item)
    return found


async def test_autogenerate_proposes_no_change(database_url: str) -> None:
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == [], "\n".join(map(str, differences))


def test_alembic_env_declares_every_table_module() -> None:
    """migrations/env.py imports each module that declares tables, or autogenerate
    would propose dropping that module's tables."""
    env = (ROOT / "migrations" / "env.py").read_text()
    modules = [
        f"from domain.{path.parent.name} import tables"
        for path in sorted((ROOT / "domain").glob("*/tables.py"))
    ]
    assert modules
    missing = [m for m in [*modules, "from infra import outbox"] if m not in env]
    assert not missing, missing
