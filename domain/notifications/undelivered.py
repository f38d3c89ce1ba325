"""Messages about an organization's bookings that could not be delivered (dead letters):
listed for its OWNER/ADMIN, who may send one again (say, once a customer's mailbox
works again)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode
from domain.notifications import deliveries
from domain.notifications.deliveries import DeadLetter
from domain.users import service as users

LISTED = 50


async def undelivered_of(
    conn: AsyncConnection, viewer: uuid.UUID, organization_id: uuid.UUID
) -> list[DeadLetter]:
    """The organization's LISTED newest undelivered messages; FORBIDDEN but to its
    OWNER/ADMIN."""
    await users.require_manager(conn, viewer, organization_id)
    return await deliveries.dead_letters(conn, LISTED, organization_id)


async def retry_undelivered(
    conn: AsyncConnection, viewer: uuid.UUID, delivery_id: uuid.UUID, now: datetime
) -> DeadLetter:
    """Queues an undelivered message again, due now with its tries counted afresh.
    NOT_FOUND unless it is an undelivered message about an organization; FORBIDDEN but
    to that organization's OWNER/ADMIN (as for its webhook deliveries)."""
    letter = await deliveries.dead_letter(conn, delivery_id)
    if letter is None or letter.organization_id is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such undelivered message.", "messageId")
    await users.require_manager(conn, viewer, letter.organization_id)
    await deliveries.retry(conn, delivery_id, now)
    return letter
