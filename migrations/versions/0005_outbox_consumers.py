"""Outbox consumers: each named consumer keeps its own durable position, so the
realtime relay, notifications, payments and calendar write-back each read every event
once, at their own pace; rows stay until every consumer has passed them.

A position is (txid, id): rows are read in the order their transactions were numbered
and only below the oldest transaction still running (the snapshot's xmin), so a row
whose transaction commits late can never be skipped by a consumer that went past
younger rows already.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.execute("CREATE INDEX outbox_position ON outbox (txid, id)")
    op.execute("DROP INDEX outbox_unpublished")
    op.execute("ALTER TABLE outbox DROP COLUMN published_at")
    op.execute(
        """
CREATE TABLE outbox_consumers (
    name text PRIMARY KEY,
    txid xid8 NOT NULL,
    id bigint NOT NULL,
    leased_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox_consumers")
    op.execute("ALTER TABLE outbox ADD COLUMN published_at timestamptz")
    op.execute("DROP INDEX outbox_position")
    op.execute("ALTER TABLE outbox DROP COLUMN txid")
    op.execute("CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL")
