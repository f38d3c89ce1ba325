"""Tables owned by the notifications domain (migration 0013 holds the constraints)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
    text,
)

from infra.database import metadata

# Outgoing messages, one row each: the durable queue the dispatcher (deliveries.py) sends.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Who derived the message and from what: the same message derived twice (an event
    # consumer delivers at least once) is queued once.
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("channel", Text, nullable=False),  # 'email' for now
    Column("recipient", Text, nullable=False),
    Column("message", LargeBinary, nullable=False),  # the EmailMessage's bytes
    # PENDING until sent (SENT), given up (DEAD) or no longer wanted (DROPPED).
    Column("status", Text, nullable=False, server_default="PENDING"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    # A reminder's guard: sent only while this booking is still active at this start
    # (and, with user_id, while that account wants reminders); else DROPPED.
    Column("booking_id", Uuid),
    Column("booking_start", DateTime(timezone=True)),
    Column("user_id", Uuid),
    # The organization the message is about: its OWNER/ADMIN see it if it cannot go.
    Column("organization_id", Uuid, ForeignKey("organizations.id", ondelete="CASCADE")),
    # The dispatcher's work list: what is pending, soonest due first.
    Index(
        "notification_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'PENDING'"),
    ),
    Index(
        "notification_deliveries_booking",
        "booking_id",
        postgresql_where=text("booking_id IS NOT NULL AND status = 'PENDING'"),
    ),
)
