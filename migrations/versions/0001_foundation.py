"""Foundation: users, sessions, organizations, catalog and schedules.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text,
    phone text,
    name text NOT NULL,
    password_hash text,
    email_verified boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_email_lower CHECK (email = lower(email))
);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id uuid NOT NULL,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    retired_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX ix_refresh_tokens_family_id ON refresh_tokens (family_id);

CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL,
    time_zone text NOT NULL,
    currency text NOT NULL,
    hold_minutes integer NOT NULL DEFAULT 15,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_organizations_slug UNIQUE (slug),
    CONSTRAINT ck_organizations_hold_positive CHECK (hold_minutes > 0),
    CONSTRAINT ck_organizations_currency_code CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_organizations_slug_form CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$')
);

CREATE TABLE memberships (
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role text NOT NULL,
    PRIMARY KEY (organization_id, user_id),
    CONSTRAINT ck_memberships_role_known CHECK (role IN ('OWNER', 'ADMIN', 'STAFF'))
);
CREATE INDEX ix_memberships_user_id ON memberships (user_id);

CREATE TABLE invitations (
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email text NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (organization_id, email),
    CONSTRAINT ck_invitations_role_known CHECK (role IN ('OWNER', 'ADMIN', 'STAFF'))
);
CREATE INDEX ix_invitations_email ON invitations (email);

CREATE TABLE services (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name text NOT NULL,
    description text,
    duration_minutes integer NOT NULL,
    buffer_before_minutes integer NOT NULL DEFAULT 0,
    buffer_after_minutes integer NOT NULL DEFAULT 0,
    slot_interval_minutes integer NOT NULL,
    min_notice_minutes integer NOT NULL DEFAULT 0,
    max_advance_days integer NOT NULL DEFAULT 60,
    capacity integer NOT NULL DEFAULT 1,
    price_amount integer NOT NULL DEFAULT 0,
    requires_confirmation boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_services_duration_positive CHECK (duration_minutes > 0),
    CONSTRAINT ck_services_buffers CHECK (buffer_before_minutes >= 0 AND buffer_after_minutes >= 0),
    CONSTRAINT ck_services_interval_positive CHECK (slot_interval_minutes > 0),
    CONSTRAINT ck_services_notice CHECK (min_notice_minutes >= 0),
    CONSTRAINT ck_services_advance CHECK (max_advance_days >= 0),
    CONSTRAINT ck_services_capacity CHECK (capacity >= 1),
    CONSTRAINT ck_services_price CHECK (price_amount >= 0)
);
CREATE INDEX ix_services_organization_id ON services (organization_id, id);

CREATE TABLE staff (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name text NOT NULL,
    email text,
    user_id uuid REFERENCES users(id) ON DELETE SET NULL,
    time_zone text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_staff_email_lower CHECK (email = lower(email))
);
CREATE INDEX ix_staff_organization_id ON staff (organization_id, id);
CREATE INDEX ix_staff_user_id ON staff (user_id);
CREATE INDEX ix_staff_email ON staff (email);

CREATE TABLE service_staff (
    service_id uuid NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    staff_id uuid NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    PRIMARY KEY (service_id, staff_id)
);
CREATE INDEX ix_service_staff_staff_id ON service_staff (staff_id);

CREATE TABLE working_hours (
    staff_id uuid NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    weekday smallint NOT NULL,
    start_time time NOT NULL,
    end_time time NOT NULL,
    CONSTRAINT ck_working_hours_weekday CHECK (weekday BETWEEN 0 AND 6),
    CONSTRAINT ck_working_hours_end_after_start CHECK (end_time > start_time),
    -- A weekday's intervals never overlap (date 2000-01-01 only makes times rangeable).
    CONSTRAINT working_hours_no_overlap EXCLUDE USING gist (
        staff_id WITH =, weekday WITH =,
        tsrange(date '2000-01-01' + start_time, date '2000-01-01' + end_time) WITH &&
    )
);

CREATE TABLE date_overrides (
    staff_id uuid NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    date date NOT NULL,
    PRIMARY KEY (staff_id, date)
);

CREATE TABLE date_override_intervals (
    staff_id uuid NOT NULL,
    date date NOT NULL,
    start_time time NOT NULL,
    end_time time NOT NULL,
    FOREIGN KEY (staff_id, date) REFERENCES date_overrides (staff_id, date) ON DELETE CASCADE,
    CONSTRAINT ck_date_override_intervals_end_after_start CHECK (end_time > start_time),
    CONSTRAINT date_override_intervals_no_overlap EXCLUDE USING gist (
        staff_id WITH =, date WITH =,
        tsrange(date '2000-01-01' + start_time, date '2000-01-01' + end_time) WITH &&
    )
);

CREATE TABLE time_off (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    staff_id uuid REFERENCES staff(id) ON DELETE CASCADE,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    reason text,
    CONSTRAINT ck_time_off_end_after_start CHECK (end_at > start_at)
);
CREATE INDEX ix_time_off_window ON time_off
    USING gist (organization_id, tstzrange(start_at, end_at));
"""

DOWNGRADE = """
DROP TABLE time_off, date_override_intervals, date_overrides, working_hours, service_staff,
    staff, services, invitations, memberships, organizations, server_secrets, refresh_tokens,
    users;
"""


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute(DOWNGRADE)
