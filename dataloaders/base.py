"""What every loader shares: its own connection per batch, never a shared session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from dataloaders.share import Connects

K = TypeVar("K")
V = TypeVar("V")

ByKeys = Callable[[AsyncConnection, Sequence[K]], Awaitable[Mapping[K, V]]]


def keyed_loader(engine: Connects, fetch: ByKeys[K, V]) -> DataLoader[K, V | None]:
    """A loader for rows by key (an id, a slug): one statement per batch, None for a
    missing key."""

    async def load(keys: list[K]) -> list[V | None]:
        async with engine.connect() as conn:
            found = await fetch(conn, keys)
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)
