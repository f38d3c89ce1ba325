"""Tables owned by the booking domain (migration 0002 holds the constraints)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE

from infra.database import metadata

bookings = Table(
    "bookings",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("reference", Text, nullable=False, unique=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("service_id", Uuid, ForeignKey("services.id"), nullable=False),
    Column("staff_id", Uuid, ForeignKey("staff.id"), nullable=False),
    Column("customer_id", Uuid, ForeignKey("users.id")),
    Column("guest_name", Text),
    Column("guest_email", Text),
    Column("guest_phone", Text),
    Column("manage_token_hash", LargeBinary),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("notes", Text),
    Column("price_amount", Integer, nullable=False),
    Column("currency", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("cancellation_reason", Text),
)

booking_changes = Table(
    "booking_changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("booking_id", Uuid, ForeignKey("bookings.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status", Text, nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text),
    # The staff member after the change; null: unchanged (and in entries before 0016).
    Column("staff_id", Uuid),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("service_id", Uuid, ForeignKey("services.id"), nullable=False),
    Column("staff_id", Uuid, ForeignKey("staff.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id")),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("booking_id", Uuid, ForeignKey("bookings.id")),
)

claims = Table(
    "claims",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("resource_id", Uuid, nullable=False),
    Column("resource_kind", Text, nullable=False, server_default="staff"),
    Column("service_id", Uuid, nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("buffer_before_minutes", Integer, nullable=False),
    Column("buffer_after_minutes", Integer, nullable=False),
    Column("period", TSTZRANGE, nullable=False),
    Column("session_key", Text, nullable=False),
    Column("seat", Integer, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("booking_id", Uuid, ForeignKey("bookings.id")),
    Column("hold_id", Uuid, ForeignKey("holds.id")),
    Column("expires_at", DateTime(timezone=True)),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", LargeBinary, nullable=False),
    Column("booking_id", Uuid, ForeignKey("bookings.id")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
