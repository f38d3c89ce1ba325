"""The outbox: domain events written in the transaction that makes the change, so a
rolled-back change leaves none; a relay hands them on after the commit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
)"""
    )
    # The relay's work list: small, whatever the outbox's history.
    op.execute("CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL")


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
