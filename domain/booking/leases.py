"""Fast-path slot locks (leases) a request takes while it claims seats. They only keep
racers from piling up on PostgreSQL; the exclusion constraint decides."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from domain.booking.slot_lock import SlotLock


class Leases:
    """Fast-path slot locks taken by one request, released after its commit."""

    def __init__(self, lock: SlotLock) -> None:
        self.lock = lock
        self.held: list[tuple[str, str]] = []

    async def take(self, staff_id: uuid.UUID, start: datetime) -> bool:
        key = f"slot:{staff_id}:{int(start.timestamp())}"
        token = await self.lock.acquire(key)
        if token is None:
            return False
        self.held.append((key, token))
        return True

    async def release(self) -> None:
        for key, token in self.held:
            await self.lock.release(key, token)
        self.held.clear()


@asynccontextmanager
async def leased(lock: SlotLock) -> AsyncIterator[Leases]:
    """Open it before the transaction: its leases are released after the commit (or the
    rollback), so racers wait until the claim is visible."""
    leases = Leases(lock)
    try:
        yield leases
    finally:
        await leases.release()
