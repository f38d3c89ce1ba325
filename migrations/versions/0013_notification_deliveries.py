"""Notification deliveries: a durable queue of outgoing e-mail, each message once (its
dedupe key), sent by a dispatcher with retries and a dead letter at the end.

Revision ID: 0013_notification_deliveries
Revises: 0012_refunds_not_due
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0013_notification_deliveries"
down_revision = "0012_refunds_not_due"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE notification_deliveries (
    id uuid PRIMARY KEY,
    dedupe_key text NOT NULL UNIQUE,
    channel text NOT NULL,
    recipient text NOT NULL,
    message bytea NOT NULL,
    status text NOT NULL DEFAULT 'PENDING',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    CONSTRAINT notification_deliveries_channel_known CHECK (channel IN ('email')),
    CONSTRAINT notification_deliveries_status_known
        CHECK (status IN ('PENDING', 'SENT', 'DEAD')),
    CONSTRAINT notification_deliveries_attempts_counted CHECK (attempts >= 0),
    CONSTRAINT notification_deliveries_sent_when_sent
        CHECK ((status = 'SENT') = (sent_at IS NOT NULL))
)"""
    )
    # The dispatcher's work list: pending messages, soonest due first.
    op.execute(
        "CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)"
        " WHERE status = 'PENDING'"
    )
    # The dead letters' listing (newest first).
    op.execute(
        "CREATE INDEX notification_deliveries_dead ON notification_deliveries (created_at)"
        " WHERE status = 'DEAD'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE notification_deliveries")
