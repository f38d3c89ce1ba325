"""Organization webhook endpoints and their deliveries (issue 12).

Revision ID: 0014_webhook_endpoints
Revises: 0013_notification_deliveries
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "0014_webhook_endpoints"
down_revision = "0013_notification_deliveries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
