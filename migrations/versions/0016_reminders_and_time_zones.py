"""Recipients' time zones and guarded (reminder) deliveries (issue 12).

- users.time_zone: where an account holder reads times (their e-mails); null: the
  organization's zone.
- organizations.reminder_minutes: how long before a confirmed booking its customer is
  reminded (at most 3 reminders, each 10 minutes to 7 days ahead; empty: none).
- notification_deliveries names the organization a message is about (its OWNER/ADMIN
  list and retry what could not be delivered), and gains a guard: a reminder names its booking and the start it
  reminds of, and the dispatcher sends it only while that booking is still active at
  that start (checked and locked in the sending transaction); otherwise it is DROPPED.
  user_id names an account whose reminder preference is checked at the same moment.
- Text messages (channel 'sms'): reminders to an account's verified phone number.
- booking_changes.staff_id: the staff member after each change (a reschedule may move a
  booking to another one, who must hear of it as the first hears it is gone); null in
  entries written before, and in those that cannot change it (read: unchanged).

Revision ID: 0016_reminders_and_time_zones
Revises: 0015_calendar_feeds
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0016_reminders_and_time_zones"
down_revision = "0015_calendar_feeds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE users ADD COLUMN time_zone text")
    op.execute("ALTER TABLE booking_changes ADD COLUMN staff_id uuid")
    op.execute(
        """
ALTER TABLE organizations
    ADD COLUMN reminder_minutes integer[] NOT NULL DEFAULT '{1440,60}',
    ADD CONSTRAINT ck_organizations_reminder_minutes_range CHECK (
        cardinality(reminder_minutes) <= 3
        AND 10 <= ALL (reminder_minutes) AND 10080 >= ALL (reminder_minutes)
        AND array_position(reminder_minutes, NULL) IS NULL
    )"""
    )
    op.execute(
        """
ALTER TABLE notification_deliveries
    ADD COLUMN booking_id uuid,
    ADD COLUMN booking_start timestamptz,
    ADD COLUMN user_id uuid,
    ADD COLUMN organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    ADD CONSTRAINT notification_deliveries_guard_whole
        CHECK ((booking_id IS NULL) = (booking_start IS NULL)),
    DROP CONSTRAINT notification_deliveries_status_known,
    ADD CONSTRAINT notification_deliveries_status_known
        CHECK (status IN ('PENDING', 'SENT', 'DEAD', 'DROPPED')),
    DROP CONSTRAINT notification_deliveries_channel_known,
    ADD CONSTRAINT notification_deliveries_channel_known CHECK (channel IN ('email', 'sms'))"""
    )
    # A booking's pending reminders.
    op.execute(
        "CREATE INDEX notification_deliveries_booking ON notification_deliveries (booking_id)"
        " WHERE booking_id IS NOT NULL AND status = 'PENDING'"
    )
    # An organization's dead letters, newest first.
    op.execute(
        "CREATE INDEX notification_deliveries_dead_of_org ON notification_deliveries"
        " (organization_id, created_at) WHERE status = 'DEAD'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX notification_deliveries_dead_of_org")
    op.execute("DROP INDEX notification_deliveries_booking")
    op.execute("DELETE FROM notification_deliveries WHERE status = 'DROPPED' OR channel = 'sms'")
    op.execute(
        """
ALTER TABLE notification_deliveries
    DROP CONSTRAINT notification_deliveries_channel_known,
    ADD CONSTRAINT notification_deliveries_channel_known CHECK (channel IN ('email')),
    DROP CONSTRAINT notification_deliveries_status_known,
    ADD CONSTRAINT notification_deliveries_status_known
        CHECK (status IN ('PENDING', 'SENT', 'DEAD')),
    DROP CONSTRAINT notification_deliveries_guard_whole,
    DROP COLUMN organization_id,
    DROP COLUMN user_id,
    DROP COLUMN booking_start,
    DROP COLUMN booking_id"""
    )
    op.execute("ALTER TABLE organizations DROP COLUMN reminder_minutes")
    op.execute("ALTER TABLE booking_changes DROP COLUMN staff_id")
    op.execute("ALTER TABLE users DROP COLUMN time_zone")
