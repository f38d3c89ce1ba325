"""Tables owned by the payments domain (migration 0008 holds the constraints)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Integer, Table, Text, Uuid, func

from infra.database import metadata

payments = Table(
    "payments",
    metadata,
    Column("id", Uuid, primary_key=True),
    # One payment per booking: a card that fails is retried on the same PaymentIntent.
    Column("booking_id", Uuid, ForeignKey("bookings.id"), nullable=False, unique=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("provider", Text, nullable=False),
    Column("intent_id", Text, unique=True),  # null until the provider made the intent
    Column("client_secret", Text),
    Column("status", Text, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("refunded_amount", Integer, nullable=False, server_default="0"),
    Column("currency", Text, nullable=False),
    Column("last_error", Text),
    # When the provider's state we hold was true: an older event never overwrites it.
    Column("state_at", DateTime(timezone=True)),
    Column("checked_at", DateTime(timezone=True)),  # last asked by the reconciliation
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Uuid, primary_key=True),  # the provider's idempotency key derives from it
    # One compensation per payment: a booking ends once.
    Column("payment_id", Uuid, ForeignKey("payments.id"), nullable=False, unique=True),
    Column("amount", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    # PENDING until the provider made it, SUCCEEDED; NOT_DUE: nothing owed (amount 0).
    Column("status", Text, nullable=False),
    Column("provider_ref", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("done_at", DateTime(timezone=True)),
)

# Provider events (webhooks) applied: each at most once. Kept 30 days (at least 7).
payment_events = Table(
    "payment_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
