"""Tables of a person's own notification settings: reminder preferences and calendar feed
tokens (migration 0015 holds the constraints)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, LargeBinary, Table, Uuid, func

from infra.database import metadata

# One row per user who changed a preference; no row: every reminder on.
notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("email_reminders", Boolean, nullable=False, server_default="true"),
    Column("sms_reminders", Boolean, nullable=False, server_default="true"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One secret feed per owner, a customer (user_id) or a staff member (staff_id), never
# both: rotating replaces the owner's row, so the old token stops working at once.
calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True),  # sha256 of the token
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), unique=True),
    Column("staff_id", Uuid, ForeignKey("staff.id", ondelete="CASCADE"), unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
