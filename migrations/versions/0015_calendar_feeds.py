"""Calendar feed tokens and notification preferences (issue 12).

Revision ID: 0015_calendar_feeds
Revises: 0014_webhook_endpoints
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "0015_calendar_feeds"
down_revision = "0014_webhook_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
