"""Bookings: holds, claims on resources (the no-double-booking guarantee), history,
idempotency keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE bookings (
    id uuid PRIMARY KEY,
    reference text NOT NULL,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    service_id uuid NOT NULL REFERENCES services(id) ON DELETE RESTRICT,
    staff_id uuid NOT NULL REFERENCES staff(id) ON DELETE RESTRICT,
    customer_id uuid REFERENCES users(id) ON DELETE SET NULL,
    guest_name text,
    guest_email text,
    guest_phone text,
    manage_token_hash bytea,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    status text NOT NULL,
    notes text,
    price_amount integer NOT NULL DEFAULT 0,
    currency text NOT NULL,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    cancellation_reason text,
    CONSTRAINT uq_bookings_reference UNIQUE (reference),
    CONSTRAINT ck_bookings_status_known CHECK (status IN (
        'PENDING_PAYMENT', 'PENDING_CONFIRMATION', 'CONFIRMED', 'CANCELLED', 'DECLINED',
        'EXPIRED', 'COMPLETED', 'NO_SHOW')),
    CONSTRAINT ck_bookings_end_after_start CHECK (end_at > start_at),
    CONSTRAINT ck_bookings_someone CHECK (
        customer_id IS NOT NULL OR (guest_name IS NOT NULL AND guest_email IS NOT NULL)),
    CONSTRAINT ck_bookings_price CHECK (price_amount >= 0)
);
CREATE INDEX ix_bookings_customer ON bookings (customer_id, start_at, id);
CREATE INDEX ix_bookings_organization ON bookings (organization_id, start_at, id);
CREATE INDEX ix_bookings_staff ON bookings (staff_id, start_at, id);
CREATE INDEX ix_bookings_pending_expiry ON bookings (expires_at) WHERE status = 'PENDING_PAYMENT';

CREATE TABLE booking_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id uuid NOT NULL REFERENCES bookings(id) ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    actor text NOT NULL,
    reason text,
    CONSTRAINT ck_booking_changes_actor CHECK (
        actor IN ('customer', 'guest', 'staff', 'admin', 'system', 'payment'))
);
CREATE INDEX ix_booking_changes_booking ON booking_changes (booking_id, id);

CREATE TABLE holds (
    id uuid PRIMARY KEY,
    service_id uuid NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    staff_id uuid NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    user_id uuid REFERENCES users(id) ON DELETE CASCADE,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    booking_id uuid REFERENCES bookings(id) ON DELETE SET NULL
);

-- One row per seat that takes a resource's time: an active booking or a live hold.
-- The resource is a staff member today; rooms and equipment claim the same way.
CREATE TABLE claims (
    id uuid PRIMARY KEY,
    resource_id uuid NOT NULL,
    resource_kind text NOT NULL DEFAULT 'staff',
    service_id uuid NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    buffer_before_minutes integer NOT NULL DEFAULT 0,
    buffer_after_minutes integer NOT NULL DEFAULT 0,
    -- The time taken, buffers included, half-open.
    period tstzrange NOT NULL,
    -- Seats of one group session (same service, same start) may overlap each other.
    session_key text NOT NULL,
    seat integer NOT NULL,
    capacity integer NOT NULL,
    booking_id uuid REFERENCES bookings(id) ON DELETE CASCADE,
    hold_id uuid REFERENCES holds(id) ON DELETE CASCADE,
    expires_at timestamptz,  -- a hold's claim lapses then
    CONSTRAINT ck_claims_seat CHECK (seat BETWEEN 1 AND capacity),
    CONSTRAINT ck_claims_owner CHECK ((booking_id IS NULL) <> (hold_id IS NULL)),
    CONSTRAINT ck_claims_period CHECK (
        period = tstzrange(start_at - make_interval(mins => buffer_before_minutes),
                           end_at + make_interval(mins => buffer_after_minutes), '[)')),
    CONSTRAINT claims_no_overlap EXCLUDE USING gist (
        resource_id WITH =, period WITH &&, session_key WITH <>),
    CONSTRAINT uq_claims_seat UNIQUE (resource_id, session_key, seat)
);
CREATE INDEX ix_claims_booking ON claims (booking_id);
CREATE INDEX ix_claims_hold ON claims (hold_id);

CREATE TABLE idempotency_keys (
    scope text NOT NULL,
    key text NOT NULL,
    request_hash bytea NOT NULL,
    booking_id uuid REFERENCES bookings(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at);
"""

DOWNGRADE = """
DROP TABLE idempotency_keys, claims, holds, booking_changes, bookings;
"""


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute(DOWNGRADE)
