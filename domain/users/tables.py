"""Tables owned by the users domain: people, sessions, organizations and roles."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
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

from infra.database import metadata

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, unique=True),  # stored lower-cased
    Column("phone", Text),
    Column("name", Text, nullable=False),
    Column("password_hash", Text),
    Column("email_verified", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),  # sha256 of the opaque token
    Column("family_id", Uuid, nullable=False, index=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),  # used once, or signed out
    Column("revoked_at", DateTime(timezone=True)),  # the family was revoked
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("slug", Text, nullable=False, unique=True),
    Column("time_zone", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("hold_minutes", Integer, nullable=False, server_default="15"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The booking and refund policy (updateOrganizationSettings).
    Column("free_cancellation_hours", Integer, nullable=False, server_default="24"),
    Column("late_cancellation_refund_percent", Integer, nullable=False, server_default="0"),
    CheckConstraint("hold_minutes BETWEEN 1 AND 120", name="hold_minutes_range"),
    CheckConstraint(
        "free_cancellation_hours BETWEEN 0 AND 720", name="free_cancellation_hours_range"
    ),
    CheckConstraint(
        "late_cancellation_refund_percent BETWEEN 0 AND 100",
        name="late_cancellation_refund_percent_range",
    ),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
)

memberships = Table(
    "memberships",
    metadata,
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", Text, nullable=False),
    CheckConstraint("role in ('OWNER', 'ADMIN', 'STAFF')", name="role_known"),
)

# addStaff(email:) for someone without an account yet: the membership waits here.
invitations = Table(
    "invitations",
    metadata,
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("email", Text, primary_key=True),
    Column("role", Text, nullable=False),
    CheckConstraint("role in ('OWNER', 'ADMIN', 'STAFF')", name="role_known"),
)
