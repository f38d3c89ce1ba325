"""Undelivered e-mails: listed for an organization's OWNER/ADMIN, sent again by them."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.notifications import undelivered
from domain.notifications.deliveries import DeadLetter
from domain.users import records as us
from resolvers.access import viewer_role
from resolvers.attempt import attempt, key
from schema.context import Info, forbidden
from schema.undelivered import RetryMessagePayload, UndeliveredMessage


async def organization_undelivered(info: Info, org: us.Organization) -> list[UndeliveredMessage]:
    """`Organization.undeliveredMessages`: an anonymous viewer is UNAUTHENTICATED, anyone
    but the organization's OWNER/ADMIN FORBIDDEN."""
    viewer = info.context.require_viewer()
    if await viewer_role(info, org.id) not in us.MANAGERS:
        raise forbidden("Only the organization's owners and admins see its undelivered mail.")
    async with info.context.read() as conn:
        found = await undelivered.undelivered_of(conn, viewer, org.id)
    return [UndeliveredMessage.of(letter) for letter in found]


async def retry_message(info: Info, message_id: strawberry.ID) -> RetryMessagePayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> DeadLetter:
        found = key(message_id, "UndeliveredMessage", "messageId")
        return await undelivered.retry_undelivered(conn, viewer, found, info.context.now)

    letter, errors = await attempt(info, work)
    return RetryMessagePayload(
        message=UndeliveredMessage.of(letter) if letter else None, errors=errors
    )
