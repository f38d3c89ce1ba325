"""A refund decided as nothing (a late cancellation under a 0 % policy) is kept as such:
status NOT_DUE with amount 0, so the decision is made once and a policy changed later
cannot refund it after all.

Revision ID: 0012_refunds_not_due
Revises: 0011_email_tokens
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0012_refunds_not_due"
down_revision = "0011_email_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE refunds DROP CONSTRAINT refunds_amount_positive")
    op.execute("ALTER TABLE refunds DROP CONSTRAINT refunds_status_known")
    op.execute(
        "ALTER TABLE refunds ADD CONSTRAINT refunds_status_known"
        " CHECK (status IN ('PENDING', 'SUCCEEDED', 'NOT_DUE'))"
    )
    op.execute(
        "ALTER TABLE refunds ADD CONSTRAINT refunds_amount_due"
        " CHECK (CASE WHEN status = 'NOT_DUE' THEN amount = 0 ELSE amount > 0 END)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM refunds WHERE status = 'NOT_DUE'")
    op.execute("ALTER TABLE refunds DROP CONSTRAINT refunds_amount_due")
    op.execute("ALTER TABLE refunds DROP CONSTRAINT refunds_status_known")
    op.execute(
        "ALTER TABLE refunds ADD CONSTRAINT refunds_status_known"
        " CHECK (status IN ('PENDING', 'SUCCEEDED'))"
    )
    op.execute("ALTER TABLE refunds ADD CONSTRAINT refunds_amount_positive CHECK (amount > 0)")
