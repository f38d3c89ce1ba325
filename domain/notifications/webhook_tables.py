"""Tables of organization webhooks (migration 0014 holds the constraints and indexes)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from infra.database import metadata

# Where an organization wants its events POSTed. Deleted for good (its deliveries with it).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),  # WebhookEvent values, at least one
    # The HMAC key (whsec_...): kept in clear, as signing needs it; shown once, on create.
    Column("signing_secret", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("paused_reason", Text),  # set exactly while paused (active false)
    # The first failure since the last success; cleared by a success or a resume.
    Column("failing_since", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One event for one endpoint: its exact body, and what became of sending it.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "endpoint_id",
        Uuid,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    # The bytes POSTed, kept as bytes: every retry and redelivery signs the same body.
    Column("body", LargeBinary, nullable=False),
    # PENDING (not tried since queued), FAILED (retry scheduled), DELIVERED, DEAD.
    Column("status", Text, nullable=False, server_default="PENDING"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),  # while PENDING or FAILED
    # When it was last put in the queue (published, redelivered, resumed): its day of
    # retries counts from here.
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    # An event published twice (consumers deliver at least once) is delivered once.
    UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_once"),
    # The dispatcher's work list: what is due, soonest first.
    Index(
        "webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status IN ('PENDING', 'FAILED')"),
    ),
)
