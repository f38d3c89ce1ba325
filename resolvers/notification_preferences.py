"""A user's reminder preferences: read by the user themself, changed by them."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode
from domain.notifications import preferences
from domain.users import records as us
from domain.users import service as users
from resolvers.attempt import attempt
from schema.context import Info, forbidden
from schema.identity import User, UserPayload
from schema.notification_preferences import (
    NotificationPreferences,
    UpdateNotificationPreferencesInput,
)


async def notification_preferences(
    info: Info, user_id: uuid.UUID, *, own: bool
) -> NotificationPreferences:
    """`User.notificationPreferences`: the account's owner only (`own`: the answer's
    recipient proved the account theirs, as signUp's). A direct read, no dataloader: only
    the viewer's own User can ask, so a request reads one account's row, never many."""
    if not own and info.context.viewer_id != user_id:
        raise forbidden("Only the account's owner sees this.")
    async with info.context.read() as conn:
        found = await preferences.preferences_of(conn, [user_id])
    return NotificationPreferences.of(found[user_id], user_id, own=own)


async def update_notification_preferences(
    info: Info, input: UpdateNotificationPreferencesInput
) -> UserPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> us.User:
        user = (await users.users_by_id(conn, [viewer])).get(viewer)
        if user is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such account.")
        await preferences.update_preferences(
            conn, viewer, input.email_reminders, input.sms_reminders
        )
        return user

    user, errors = await attempt(info, work)
    return UserPayload(user=User.of(user, own=True) if user else None, errors=errors)
