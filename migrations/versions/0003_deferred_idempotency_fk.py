"""Idempotency keys name their booking in the same statement that registers them,
before the booking row exists in that transaction: the foreign key is checked at
commit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_booking_id_fkey "
        "DEFERRABLE INITIALLY DEFERRED"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_booking_id_fkey "
        "NOT DEFERRABLE"
    )
