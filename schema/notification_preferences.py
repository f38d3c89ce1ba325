"""Which reminders a user gets: the type, its input (the payload is UserPayload)."""

from __future__ import annotations

import uuid

import strawberry

from domain.notifications.preferences import Preferences

TRANSACTIONAL = (
    " Only reminders: the messages about a booking itself (received, confirmed, moved,"
    " cancelled, receipts and refunds) always go."
)


@strawberry.type(
    name="NotificationPreferences",
    description="Which reminders the user gets, 24 hours and 1 hour before a booking."
    + TRANSACTIONAL,
)
class NotificationPreferences:
    email_reminders: bool = strawberry.field(description="Reminders by e-mail." + TRANSACTIONAL)
    sms_reminders: bool = strawberry.field(description="Reminders by text message." + TRANSACTIONAL)
    # Whose they are, for the access rule of the fields (schema/access_rules.py): the
    # account, and `own` as on User (the answer's recipient proved it theirs).
    user_id: strawberry.Private[uuid.UUID]
    own: strawberry.Private[bool] = False

    @classmethod
    def of(cls, record: Preferences, user_id: uuid.UUID, *, own: bool) -> NotificationPreferences:
        return cls(
            email_reminders=record.email_reminders,
            sms_reminders=record.sms_reminders,
            user_id=user_id,
            own=own,
        )


@strawberry.input
class UpdateNotificationPreferencesInput:
    email_reminders: bool | None = strawberry.field(default=None, description="Null: unchanged.")
    sms_reminders: bool | None = strawberry.field(default=None, description="Null: unchanged.")
