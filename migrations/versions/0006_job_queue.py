"""The job queue: procrastinate's tables and functions (its `schema.sql`, as shipped
with the pinned procrastinate of requirements.lock), in this migration's transaction.
A later procrastinate that changes its schema comes with its own migration here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.util import await_only

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql("SELECT 1")  # the migration's transaction has begun
    # Many statements and $$-quoted functions: asyncpg's simple protocol runs them as
    # one script (a prepared statement cannot), inside the same transaction.
    raw = bind.connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(raw.execute(SchemaManager.get_schema()))


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,"
        " procrastinate_jobs, procrastinate_workers CASCADE"
    )
    op.execute("DROP TYPE IF EXISTS procrastinate_job_status, procrastinate_job_event_type")
