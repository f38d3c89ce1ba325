"""Recipients' time zones and guarded (reminder) deliveries (issue 12).

Revision ID: 0016_reminders_and_time_zones
Revises: 0015_calendar_feeds
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "0016_reminders_and_time_zones"
down_revision = "0015_calendar_feeds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
