"""Organization settings: the refund policy beside the hold time, each within its range
(hold_minutes 1-120, free_cancellation_hours 0-720, late_cancellation_refund_percent
0-100), checked by PostgreSQL whatever the code does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
ALTER TABLE organizations
    ADD COLUMN free_cancellation_hours integer NOT NULL DEFAULT 24,
    ADD COLUMN late_cancellation_refund_percent integer NOT NULL DEFAULT 0,
    DROP CONSTRAINT ck_organizations_hold_positive,
    ADD CONSTRAINT ck_organizations_hold_minutes_range
        CHECK (hold_minutes BETWEEN 1 AND 120),
    ADD CONSTRAINT ck_organizations_free_cancellation_hours_range
        CHECK (free_cancellation_hours BETWEEN 0 AND 720),
    ADD CONSTRAINT ck_organizations_late_cancellation_refund_percent_range
        CHECK (late_cancellation_refund_percent BETWEEN 0 AND 100)
"""
    )


def downgrade() -> None:
    op.execute(
        """
ALTER TABLE organizations
    DROP CONSTRAINT ck_organizations_late_cancellation_refund_percent_range,
    DROP CONSTRAINT ck_organizations_free_cancellation_hours_range,
    DROP CONSTRAINT ck_organizations_hold_minutes_range,
    DROP COLUMN late_cancellation_refund_percent,
    DROP COLUMN free_cancellation_hours,
    ADD CONSTRAINT ck_organizations_hold_positive CHECK (hold_minutes > 0)
"""
    )
