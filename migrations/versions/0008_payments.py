"""Payments: one per paid booking, its refunds, and the provider events applied.

A booking's price is the booking's own (bookings.price_amount, written when it was
sold); the payment is what the provider is asked for. `intent_id` is null between the
commit that claimed the slot and the provider's answer: the reconciliation finds such
rows after a crash and finishes or abandons them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE payments (
    id uuid PRIMARY KEY,
    booking_id uuid NOT NULL UNIQUE REFERENCES bookings (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    provider text NOT NULL,
    intent_id text UNIQUE,
    client_secret text,
    status text NOT NULL,
    amount integer NOT NULL,
    refunded_amount integer NOT NULL DEFAULT 0,
    currency text NOT NULL,
    last_error text,
    state_at timestamptz,
    checked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_amount_positive CHECK (amount > 0),
    CONSTRAINT payments_refund_within_amount
        CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    CONSTRAINT payments_status_known CHECK (status IN ('REQUIRES_PAYMENT', 'PROCESSING',
        'SUCCEEDED', 'FAILED', 'CANCELED', 'REFUNDED', 'PARTIALLY_REFUNDED'))
)"""
    )
    # The reconciliation's work list: payments still open.
    op.execute(
        "CREATE INDEX payments_open ON payments (created_at)"
        " WHERE status IN ('REQUIRES_PAYMENT', 'PROCESSING', 'FAILED')"
    )
    op.execute(
        """
CREATE TABLE refunds (
    id uuid PRIMARY KEY,
    payment_id uuid NOT NULL UNIQUE REFERENCES payments (id),
    amount integer NOT NULL,
    reason text NOT NULL,
    status text NOT NULL,
    provider_ref text,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    CONSTRAINT refunds_amount_positive CHECK (amount > 0),
    CONSTRAINT refunds_status_known CHECK (status IN ('PENDING', 'SUCCEEDED'))
)"""
    )
    op.execute("CREATE INDEX refunds_pending ON refunds (created_at) WHERE status = 'PENDING'")
    op.execute(
        """
CREATE TABLE payment_events (
    id text PRIMARY KEY,
    type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)"""
    )
    op.execute("CREATE INDEX payment_events_received ON payment_events (received_at)")


def downgrade() -> None:
    op.execute("DROP TABLE payment_events")
    op.execute("DROP TABLE refunds")
    op.execute("DROP TABLE payments")
