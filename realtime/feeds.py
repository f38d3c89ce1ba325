"""Subscriptions shared: subscribers who send the same document with the same variables,
as the same viewer, form one feed, executed once per change, its answer sent to all.

Per-subscriber GraphQL execution is what makes a thousand subscribers cost seconds of
CPU per change; here a change costs one computation of each touched window (live.py)
and one execution per distinct feed. Every execution gets a context of its own, with
fresh dataloaders: nothing cached outlives the event it was loaded for.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from inspect import isawaitable
from typing import Any, Protocol

import orjson
from graphql import DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema, execute
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import events
from domain.availability.live import LiveAvailability, Window
from domain.booking import service as booking
from resolvers.availability import WindowRequest, availability_of
from schema.booking import Booking
from schema.context import Context

log = logging.getLogger(__name__)

COALESCE = 0.05  # seconds: one push for a burst of changes to one booking


class Outlet(Protocol):
    """Where a subscriber's messages go (its connection)."""

    def send_next(self, subscription_id: str, payload: str) -> None: ...

    def send_errors(self, subscription_id: str, errors: list[dict[str, Any]]) -> None: ...

    def send_complete(self, subscription_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Operation:
    """A validated subscription request."""

    text: str  # the document as sent: feeds are shared by exact text
    document: DocumentNode
    name: str | None
    variables: dict[str, Any]  # as sent (coerced again by graphql-core on execution)
    viewer: uuid.UUID | None

    @property
    def key(self) -> tuple[str, str | None, bytes, uuid.UUID | None]:
        return (
            self.text,
            self.name,
            orjson.dumps(self.variables, option=orjson.OPT_SORT_KEYS),
            self.viewer,
        )


ContextFactory = Callable[[uuid.UUID | None], Context]
ErrorFormatter = Callable[[GraphQLError], dict[str, Any]]


@dataclass(eq=False)
class Feed:
    operation: Operation
    subscribers: dict[tuple[int, str], tuple[Outlet, str]] = field(default_factory=dict)
    payload: str | None = None  # the last answer sent
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set up, for twins to join

    def add(self, outlet: Outlet, subscription_id: str) -> None:
        self.subscribers[(id(outlet), subscription_id)] = (outlet, subscription_id)

    def remove(self, outlet: Outlet, subscription_id: str) -> None:
        self.subscribers.pop((id(outlet), subscription_id), None)

    def send(self, payload: str) -> None:
        self.payload = payload
        for outlet, subscription_id in list(self.subscribers.values()):
            outlet.send_next(subscription_id, payload)


class Feeds:
    def __init__(
        self,
        schema: GraphQLSchema,
        live: LiveAvailability,
        reader: AsyncEngine,
        context: ContextFactory,
        format_error: ErrorFormatter,
    ) -> None:
        self.schema = schema
        self.live = live
        self.reader = reader
        self.context = context
        self.format_error = format_error
        self.availability: dict[tuple[Any, ...], AvailabilityFeed] = {}
        self.bookings: dict[uuid.UUID, dict[tuple[Any, ...], BookingFeed]] = {}
        self.booking_listeners: dict[uuid.UUID, set[Callable[[], None]]] = {}

    async def render(self, operation: Operation, root: object, context: Context) -> str:
        """One execution of the operation's selection set on `root`, as JSON."""
        result: Any = execute(
            self.schema,
            operation.document,
            root_value=root,
            context_value=context,
            variable_values=operation.variables,
            operation_name=operation.name,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [self.format_error(e) for e in result.errors]
        return orjson.dumps(body).decode()

    # ---- availabilityChanged --------------------------------------------------------------

    async def watch_availability(
        self,
        operation: Operation,
        request: Callable[[], Awaitable[WindowRequest]],
        outlet: Outlet,
        subscription_id: str,
    ) -> Callable[[], None]:
        """Subscribes; sends the snapshot; the function that unsubscribes. `request`
        checks the arguments: only the first subscriber of a feed needs it (the answer
        depends on nothing but the operation, the variables and the viewer)."""
        key = operation.key
        feed = self.availability.get(key)
        if feed is None:
            checked = await request()
            feed = self.availability.get(key)  # a twin may have made it meanwhile
        if feed is None:
            feed = AvailabilityFeed(operation, key=key, request=checked, feeds=self)
            self.availability[key] = feed  # before the await: concurrent twins join it
            try:
                feed.window = await self.live.watch(
                    checked.service, checked.start, checked.end, checked.staff_id, feed.changed
                )
            except BaseException:
                del self.availability[key]
                raise
            finally:
                feed.ready.set()
        await feed.ready.wait()
        feed.add(outlet, subscription_id)
        if feed.payload is None or feed.rendered_version != feed.window_version():
            await feed.push()
        else:
            outlet.send_next(subscription_id, feed.payload)
        return partial(self._stop_availability, feed, outlet, subscription_id)

    def _stop_availability(self, feed: AvailabilityFeed, outlet: Outlet, sub_id: str) -> None:
        feed.remove(outlet, sub_id)
        if not feed.subscribers and self.availability.get(feed.key) is feed:
            del self.availability[feed.key]
            if feed.window is not None:
                self.live.unwatch(feed.window, feed.changed)

    # ---- bookingChanged ------------------------------------------------------------------

    async def watch_booking(
        self,
        operation: Operation,
        booking_id: uuid.UUID,
        manage_token: str | None,
        outlet: Outlet,
        subscription_id: str,
    ) -> Callable[[], None] | None:
        """Subscribes when the viewer may read the booking (then sends it); else None."""
        key = (*operation.key, manage_token)
        by_key = self.bookings.setdefault(booking_id, {})
        feed = by_key.get(key)
        if feed is None:
            feed = BookingFeed(operation, booking_id=booking_id, token=manage_token, feeds=self)
            by_key[key] = feed  # before the await: concurrent twins join it
            try:
                readable = await feed.push(first=True)
            finally:
                feed.ready.set()
            if not readable:
                by_key.pop(key, None)
                if not by_key:
                    self.bookings.pop(booking_id, None)
        await feed.ready.wait()
        if feed.payload is None:
            return None
        feed.add(outlet, subscription_id)
        outlet.send_next(subscription_id, feed.payload)

        def stop() -> None:
            feed.remove(outlet, subscription_id)
            feeds = self.bookings.get(booking_id, {})
            if not feed.subscribers and feeds.get(key) is feed:
                del feeds[key]
                if not feeds:
                    self.bookings.pop(booking_id, None)

        return stop

    def changed(self, batch: list[events.Event]) -> None:
        for event in batch:
            if isinstance(event, events.BookingChanged):
                for feed in list(self.bookings.get(event.booking_id, {}).values()):
                    feed.schedule()
                for listener in list(self.booking_listeners.get(event.booking_id, ())):
                    listener()

    def listen_booking(
        self, booking_id: uuid.UUID, listener: Callable[[], None]
    ) -> Callable[[], None]:
        """Calls `listener` on each change of the booking; the function that stops it."""
        self.booking_listeners.setdefault(booking_id, set()).add(listener)

        def stop() -> None:
            listeners = self.booking_listeners.get(booking_id, set())
            listeners.discard(listener)
            if not listeners:
                self.booking_listeners.pop(booking_id, None)

        return stop

    def resync(self) -> None:
        for by_key in list(self.bookings.values()):
            for feed in list(by_key.values()):
                feed.schedule()


@dataclass(eq=False)
class AvailabilityFeed(Feed):
    key: tuple[Any, ...] = ()
    request: WindowRequest | None = None
    feeds: Feeds | None = None
    window: Window | None = None
    rendered_version: int = -1
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def window_version(self) -> int:
        return self.window.version if self.window else -1

    async def changed(self, window: Window, forced: bool) -> None:
        await self.push(forced)

    async def push(self, forced: bool = False) -> None:
        """Sends the window's offer to every subscriber, unless they have it already
        (`forced`: they may have missed it, the bus was down)."""
        assert self.feeds is not None
        assert self.request is not None
        assert self.window is not None
        async with self._lock:
            version, offer = self.window.version, self.window.offer
            if version == self.rendered_version and self.payload is not None:
                if forced:
                    self.send(self.payload)
                return
            assert offer is not None
            context = self.feeds.context(self.operation.viewer)
            root = availability_of(self.request, offer, context.loaders)
            payload = await self.feeds.render(self.operation, root, context)
            self.rendered_version = version
            self.send(payload)


@dataclass(eq=False)
class BookingFeed(Feed):
    booking_id: uuid.UUID | None = None
    token: str | None = None
    feeds: Feeds | None = None
    pending: asyncio.Task[None] | None = None

    def schedule(self) -> None:
        if self.pending is None:
            self.pending = asyncio.create_task(self._later())

    async def _later(self) -> None:
        try:
            await asyncio.sleep(COALESCE)
            self.pending = None
            if not await self.push():
                for outlet, subscription_id in list(self.subscribers.values()):
                    outlet.send_errors(
                        subscription_id,
                        [{"message": "No such booking.", "extensions": {"code": "NOT_FOUND"}}],
                    )  # an error ends the operation: no `complete` after it
                self.subscribers.clear()
        except Exception:
            log.warning("pushing a booking change failed", exc_info=True)
        finally:
            self.pending = None

    async def push(self, first: bool = False) -> bool:
        """Sends the booking as the viewer may read it now; False when they may not."""
        assert self.feeds is not None
        assert self.booking_id is not None
        async with self.feeds.reader.connect() as conn:
            found = await booking.booking_and_roles(
                conn, self.booking_id, self.operation.viewer, self.token
            )
        if found is None:
            return False
        context = self.feeds.context(self.operation.viewer)
        payload = await self.feeds.render(self.operation, Booking.as_read_by(*found), context)
        if first:
            self.payload = payload
        elif payload != self.payload:
            # Nothing the subscriber can see changed (an event that arrived after the
            # snapshot already showed it, say): nothing to push.
            self.send(payload)
        return True
