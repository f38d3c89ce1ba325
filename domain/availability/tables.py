"""Tables owned by the availability domain: what a business offers and when."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    SmallInteger,
    Table,
    Text,
    Time,
    Uuid,
    func,
)

from infra.database import metadata

services = Table(
    "services",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("duration_minutes", Integer, nullable=False),
    Column("buffer_before_minutes", Integer, nullable=False, server_default="0"),
    Column("buffer_after_minutes", Integer, nullable=False, server_default="0"),
    Column("slot_interval_minutes", Integer, nullable=False),
    Column("min_notice_minutes", Integer, nullable=False, server_default="0"),
    Column("max_advance_days", Integer, nullable=False, server_default="60"),
    Column("capacity", Integer, nullable=False, server_default="1"),
    Column("price_amount", Integer, nullable=False, server_default="0"),
    Column("requires_confirmation", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("duration_minutes > 0", name="duration_positive"),
    CheckConstraint("buffer_before_minutes >= 0 and buffer_after_minutes >= 0", name="buffers"),
    CheckConstraint("slot_interval_minutes > 0", name="interval_positive"),
    CheckConstraint("min_notice_minutes >= 0", name="notice"),
    CheckConstraint("max_advance_days >= 0", name="advance"),
    CheckConstraint("capacity >= 1", name="capacity"),
    CheckConstraint("price_amount >= 0", name="price"),
)

staff = Table(
    "staff",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", Text, nullable=False),
    Column("email", Text),  # lower-cased; links the user with this e-mail
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True),
    Column("time_zone", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

service_staff = Table(
    "service_staff",
    metadata,
    Column("service_id", Uuid, ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
    Column("staff_id", Uuid, ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True),
)

working_hours = Table(
    "working_hours",
    metadata,
    Column("staff_id", Uuid, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("weekday", SmallInteger, nullable=False),  # 0 = Monday, as Python counts
    Column("start_time", Time, nullable=False),
    Column("end_time", Time, nullable=False),
    CheckConstraint("weekday between 0 and 6", name="weekday"),
    CheckConstraint("end_time > start_time", name="end_after_start"),
    # + an exclusion constraint (migration 0001): a weekday's intervals never overlap.
)

# A row here means "this date does not follow the weekly hours"; no intervals = day off.
date_overrides = Table(
    "date_overrides",
    metadata,
    Column("staff_id", Uuid, ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True),
    Column("date", Date, primary_key=True),
)

date_override_intervals = Table(
    "date_override_intervals",
    metadata,
    Column("staff_id", Uuid, nullable=False),
    Column("date", Date, nullable=False),
    Column("start_time", Time, nullable=False),
    Column("end_time", Time, nullable=False),
    CheckConstraint("end_time > start_time", name="end_after_start"),
)

time_off = Table(
    "time_off",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("staff_id", Uuid, ForeignKey("staff.id", ondelete="CASCADE")),  # null: whole org
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text),
    CheckConstraint("end_at > start_at", name="end_after_start"),
)
