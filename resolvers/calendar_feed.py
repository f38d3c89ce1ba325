"""rotateCalendarFeed: a new secret feed URL for the viewer's bookings or a staff member's."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.notifications import calendar_feeds
from resolvers.attempt import attempt, key
from schema.calendar_feed import CalendarFeedPayload
from schema.context import Info

# A mutation sent over the WebSocket: the feed is fetched over HTTP from the same host.
HTTP_SCHEMES = {"ws": "http", "wss": "https"}


async def rotate_calendar_feed(
    info: Info, staff_id: strawberry.ID | None = None
) -> CalendarFeedPayload:
    """staffId null: the viewer's own customer feed; else that staff member's, for the
    staff member or an OWNER/ADMIN of their organization (the domain decides)."""
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> str:
        staff_key = key(staff_id, "Staff", "staffId") if staff_id is not None else None
        return await calendar_feeds.rotate_feed(conn, viewer, staff_key)

    token, errors = await attempt(info, work)
    if token is None:
        return CalendarFeedPayload(errors=errors)
    return CalendarFeedPayload(url=_base_url(info) + calendar_feeds.feed_path(token))


def _base_url(info: Info) -> str:
    """PUBLIC_API_URL when set (behind a proxy the request's own address is not the one
    calendar apps reach), else the address this request came to."""
    configured = info.context.settings.public_api_url
    if configured:
        return configured
    request = info.context.request
    assert request is not None, "a mutation always has its request"
    base = request.base_url
    return str(base.replace(scheme=HTTP_SCHEMES.get(base.scheme, base.scheme))).rstrip("/")
