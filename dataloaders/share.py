"""A request's fair share of the database: at most a few pooled connections at once.

Sibling resolvers run concurrently, each on a connection of its own; without a bound,
one wide query could hold the whole pool while every other request waits for it.
Everything a request reads or writes (its dataloaders, root fields, its unit of work,
the live windows it has computed) goes through its `ConnectionShare`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class Connects(Protocol):
    """What a loader needs: a connection for one batch."""

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


class ConnectionShare:
    __slots__ = ("_engine", "_reader", "_slots")

    def __init__(self, engine: AsyncEngine, reader: AsyncEngine, connections: int) -> None:
        self._engine = engine
        self._reader = reader
        self._slots = asyncio.Semaphore(max(1, connections))

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads (autocommit: each statement stands alone)."""
        return self._held(self._reader.connect())

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in one transaction, committed when the block ends."""
        return self._held(self._engine.begin())

    def turn(self) -> asyncio.Semaphore:
        """One of the request's slots for work that reads on a connection of its own
        (a live window's computation): a request with many windows waits its turn
        instead of queueing them all ahead of everyone else's."""
        return self._slots

    @asynccontextmanager
    async def _held(
        self, opening: AbstractAsyncContextManager[AsyncConnection]
    ) -> AsyncIterator[AsyncConnection]:
        async with self._slots, opening as conn:
            yield conn
