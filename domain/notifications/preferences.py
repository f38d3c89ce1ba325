"""Which reminders a user wants: by e-mail, by SMS. Only reminders are governed by these;
transactional messages (a booking received, confirmed, moved or cancelled, receipts and
refunds) always go, because the customer needs them to know where they stand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.notifications.feed_tables import notification_preferences as prefs


@dataclass(frozen=True, slots=True)
class Preferences:
    email_reminders: bool = True
    sms_reminders: bool = True


DEFAULT = Preferences()


async def preferences_of(
    conn: AsyncConnection, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Preferences]:
    """Every user's preferences, one statement for all; a user who never changed them
    (no row) has every reminder on."""
    if not user_ids:
        return {}
    rows = await conn.execute(
        select(prefs.c.user_id, prefs.c.email_reminders, prefs.c.sms_reminders).where(
            prefs.c.user_id.in_(list(user_ids))
        )
    )
    found = {user_id: Preferences(email, sms) for user_id, email, sms in rows}
    return {user_id: found.get(user_id, DEFAULT) for user_id in user_ids}


async def update_preferences(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    email_reminders: bool | None,
    sms_reminders: bool | None,
) -> Preferences:
    """Sets the preferences given (None: unchanged) in one upsert, and answers them all.
    Concurrent updates of different preferences both stand: each keeps the other's
    column as the row has it."""
    statement = insert(prefs).values(
        user_id=user_id,
        email_reminders=DEFAULT.email_reminders if email_reminders is None else email_reminders,
        sms_reminders=DEFAULT.sms_reminders if sms_reminders is None else sms_reminders,
    )
    changed: dict[str, object] = {"updated_at": func.now()}
    if email_reminders is not None:
        changed["email_reminders"] = statement.excluded.email_reminders
    if sms_reminders is not None:
        changed["sms_reminders"] = statement.excluded.sms_reminders
    row = (
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[prefs.c.user_id], set_=changed
            ).returning(prefs.c.email_reminders, prefs.c.sms_reminders)
        )
    ).one()
    return Preferences(row.email_reminders, row.sms_reminders)
