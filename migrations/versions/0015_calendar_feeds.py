"""Calendar feed tokens and notification preferences (issue 12).

Revision ID: 0015_calendar_feeds
Revises: 0014_webhook_endpoints
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0015_calendar_feeds"
down_revision = "0014_webhook_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No row: every reminder on (the default a new account has).
    op.execute(
        """
CREATE TABLE notification_preferences (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email_reminders boolean NOT NULL DEFAULT true,
    sms_reminders boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""
    )
    # A feed belongs to a customer or to a staff member, and each has at most one (the
    # UNIQUE owner columns: rotating replaces the row). Only the token's SHA-256 is kept.
    op.execute(
        """
CREATE TABLE calendar_feeds (
    id uuid PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    user_id uuid UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    staff_id uuid UNIQUE REFERENCES staff (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calendar_feeds_one_owner CHECK (num_nonnulls(user_id, staff_id) = 1),
    CONSTRAINT calendar_feeds_token_hash_sha256 CHECK (octet_length(token_hash) = 32)
)"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE calendar_feeds")
    op.execute("DROP TABLE notification_preferences")
