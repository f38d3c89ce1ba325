"""Everything live in one process, wired together and started by the app's lifespan:

outbox --(relay)--> bus --(dispatch)--> live windows + booking feeds --> sockets
                                   +--> kept organizations forgotten (domain/kept.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import Schema

from domain import events
from domain.availability.live import LiveAvailability
from domain.users import service as users
from domain.users.tokens import TokenSigner
from infra.bus import RESYNC, EventBus
from infra.relay import OutboxRelay
from realtime.feeds import Feeds
from realtime.websocket import KEEP_ALIVE, Connection
from schema.context import Context
from schema.operation_limits import Documents

log = logging.getLogger(__name__)


class Hub:
    def __init__(
        self,
        *,
        schema: Schema,
        reader: AsyncEngine,
        dsn: str,
        bus: EventBus,
        signer: TokenSigner,
        context: Callable[[uuid.UUID | None], Context],
        format_error: Callable[[GraphQLError], dict[str, Any]],
        documents: Documents,
    ) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.bus = bus
        self.signer = signer
        self.context = context
        self.format_error = format_error
        self.live = LiveAvailability(reader, lambda: bus.healthy)
        self.feeds = Feeds(self.graphql_schema, self.live, reader, context, format_error)
        self.relay = OutboxRelay(dsn, bus.publish)
        self.documents = documents  # checked as over HTTP, limits included
        self.connections: set[Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.bus.connect()
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._dispatch(ready), name="realtime-dispatch"),
            asyncio.create_task(self.relay.run(), name="outbox-relay"),
            asyncio.create_task(self._keep_alive(), name="realtime-keep-alive"),
        ]
        await ready.wait()

    async def stop(self) -> None:
        for connection in list(self.connections):
            connection.close(1001, "Server shutting down")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.bus.disconnect()

    async def _dispatch(self, ready: asyncio.Event) -> None:
        """Every event batch from the bus, to whatever in this process shows it."""
        async with self.bus.messages() as messages:
            ready.set()
            async for message in messages:
                try:
                    if message == RESYNC:
                        users.forget_organizations()  # their changes may have been missed
                        self.live.resync()
                        self.feeds.resync()
                        continue
                    batch = events.decode(message)
                    users.forget_changed(batch)
                    self.live.changed(batch)
                    self.feeds.changed(batch)
                except Exception:
                    log.warning("could not dispatch an event batch", exc_info=True)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEP_ALIVE)
            for connection in list(self.connections):
                connection.keep_alive()
