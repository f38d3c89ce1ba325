"""Records kept in memory for a while: for rows that seldom change once written.

Every booking reads its service and its organization: keeping them spares a booking two
of its PostgreSQL round trips. They are kept at most `seconds`.

Organizations change through `updateOrganizationSettings`, which records an
`OrganizationChanged` event in its transaction, and every process forgets the
organization it keeps as soon as it hears of one (`domain.users.service.forget_changed`):
the process that committed it when the transaction's connection goes back to the pool
(`events.on_commit`, app.py), so it reads its own write before it answers again; every
process through the outbox relay and the bus (realtime/hub.py), milliseconds later. The
bus back after an outage (events may have been lost) makes every process forget all of
them. Services have no mutation that edits them yet: the one that does must record an
event that makes every process `forget` them the same way (`seconds` bounds what a
missed event costs).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class KeptRecords(Generic[K, V]):
    def __init__(self, seconds: float, most: int) -> None:
        self.seconds = seconds
        self.most = most
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._forgets = 0  # how many times anything was forgotten

    def get(self, key: K) -> V | None:
        found = self._kept.get(key)
        if found is None:
            return None
        until, value = found
        if time.monotonic() >= until:
            del self._kept[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        self._kept[key] = (time.monotonic() + self.seconds, value)
        self._kept.move_to_end(key)
        while len(self._kept) > self.most:
            self._kept.popitem(last=False)

    def forget(self, key: K) -> None:
        self._kept.pop(key, None)
        self._forgets += 1

    def forget_all(self) -> None:
        self._kept.clear()
        self._forgets += 1

    async def get_or_load(self, key: K, load: Callable[[K], Awaitable[V | None]]) -> V | None:
        """The kept record, or the one `load` finds (kept from then on, unless something
        was forgotten while it loaded: what it read may be what was forgotten)."""
        found = self.get(key)
        if found is None:
            forgets = self._forgets
            found = await load(key)
            if found is not None and self._forgets == forgets:
                self.put(key, found)
        return found
