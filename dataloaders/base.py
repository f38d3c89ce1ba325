"""What every loader shares: its own connection per batch, never a shared session."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from dataloaders.share import Connects

V = TypeVar("V")

ByKeys = Callable[[AsyncConnection, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, V]]]


def keyed_loader(engine: Connects, fetch: ByKeys[V]) -> DataLoader[uuid.UUID, V | None]:
    """A loader for rows by key: one statement per batch, None for a missing key."""

    async def load(keys: list[uuid.UUID]) -> list[V | None]:
        async with engine.connect() as conn:
            found = await fetch(conn, keys)
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)
