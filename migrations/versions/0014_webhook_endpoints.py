"""Organization webhook endpoints and their deliveries (issue 12).

Revision ID: 0014_webhook_endpoints
Revises: 0013_notification_deliveries
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0014_webhook_endpoints"
down_revision = "0013_notification_deliveries"
branch_labels = None
depends_on = None

EVENTS = (
    "'BOOKING_CREATED', 'BOOKING_CONFIRMED', 'BOOKING_CANCELLED', 'BOOKING_RESCHEDULED',"
    " 'BOOKING_DECLINED', 'BOOKING_EXPIRED', 'BOOKING_COMPLETED', 'BOOKING_NO_SHOW',"
    " 'PAYMENT_SUCCEEDED', 'PAYMENT_REFUNDED'"
)


def upgrade() -> None:
    op.execute(
        f"""
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url text NOT NULL,
    events text[] NOT NULL,
    signing_secret text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    paused_reason text,
    failing_since timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_endpoints_url_length CHECK (length(url) BETWEEN 1 AND 2048),
    CONSTRAINT webhook_endpoints_url_http CHECK (url ~* '^https?://'),
    CONSTRAINT webhook_endpoints_events_given CHECK (cardinality(events) >= 1),
    CONSTRAINT webhook_endpoints_events_known CHECK (events <@ ARRAY[{EVENTS}]::text[]),
    CONSTRAINT webhook_endpoints_secret_format CHECK (signing_secret LIKE 'whsec\\_%'),
    CONSTRAINT webhook_endpoints_paused_says_why CHECK (active = (paused_reason IS NULL))
)"""
    )
    op.execute(
        "CREATE INDEX webhook_endpoints_organization_id ON webhook_endpoints (organization_id)"
    )
    op.execute(
        f"""
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event text NOT NULL,
    event_id text NOT NULL,
    body bytea NOT NULL,
    status text NOT NULL DEFAULT 'PENDING',
    attempts integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error text,
    next_attempt_at timestamptz,
    queued_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id),
    CONSTRAINT webhook_deliveries_event_known CHECK (event IN ({EVENTS})),
    CONSTRAINT webhook_deliveries_event_id_given CHECK (length(event_id) BETWEEN 1 AND 200),
    CONSTRAINT webhook_deliveries_status_known
        CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD')),
    CONSTRAINT webhook_deliveries_attempts_counted CHECK (attempts >= 0),
    CONSTRAINT webhook_deliveries_status_code_http
        CHECK (last_status_code BETWEEN 100 AND 599),
    CONSTRAINT webhook_deliveries_due_while_queued
        CHECK ((status IN ('PENDING', 'FAILED')) = (next_attempt_at IS NOT NULL)),
    CONSTRAINT webhook_deliveries_delivered_when_delivered
        CHECK ((status = 'DELIVERED') = (delivered_at IS NOT NULL)),
    CONSTRAINT webhook_deliveries_failed_after_a_try CHECK (status <> 'FAILED' OR attempts > 0)
)"""
    )
    # The dispatcher's work list: what is due, soonest first.
    op.execute(
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)"
        " WHERE status IN ('PENDING', 'FAILED')"
    )
    # An endpoint's deliveries, newest first (keyset by id: UUIDv7, time-ordered).
    op.execute(
        "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhook_endpoints")
