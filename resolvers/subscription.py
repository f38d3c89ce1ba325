"""Subscriptions, per subscriber: a snapshot, then one answer per change.

Over the WebSocket at /graphql, realtime/websocket.py serves these fields itself:
subscribers sharing a document and variables share one execution (realtime/feeds.py).
These resolvers are the plain version of the same thing, for any other caller of
`schema.subscribe` (tests, tools).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from graphql import GraphQLError

from domain.availability.live import Window
from domain.booking import service as booking
from infra.ids import key_of
from resolvers.availability import availability_of, window_request
from schema.availability import Availability
from schema.booking import Booking
from schema.context import Info


async def availability_changed(
    info: Info,
    service_id: strawberry.ID,
    start: datetime,
    end: datetime,
    staff_id: strawberry.ID | None = None,
    time_zone: str | None = None,
) -> AsyncGenerator[Availability, None]:
    context = info.context
    request = await window_request(context.loaders, service_id, start, end, staff_id, time_zone)
    changes: asyncio.Queue[None] = asyncio.Queue(maxsize=1)

    async def changed(window: Window, forced: bool) -> None:
        if changes.empty():
            changes.put_nowait(None)

    window = await context.live.watch(
        request.service, request.start, request.end, request.staff_id, changed
    )
    try:
        while True:
            assert window.offer is not None
            yield availability_of(request, window.offer, context.loaders)
            await changes.get()
    finally:
        context.live.unwatch(window, changed)


async def booking_changed(
    info: Info, booking_id: strawberry.ID, manage_token: str | None = None
) -> AsyncGenerator[Booking, None]:
    context = info.context
    key = key_of(booking_id, "Booking")
    changes: asyncio.Queue[None] = asyncio.Queue(maxsize=1)

    def changed() -> None:
        if changes.empty():
            changes.put_nowait(None)

    stop = context.feeds.listen_booking(key, changed) if key else None
    try:
        while True:
            found = None
            if key is not None:
                async with context.read() as conn:
                    found = await booking.booking_and_roles(
                        conn, key, context.viewer_id, manage_token
                    )
            if found is None:
                raise GraphQLError("No such booking.", extensions={"code": "NOT_FOUND"})
            yield Booking.as_read_by(*found)
            await changes.get()
    finally:
        if stop is not None:
            stop()
