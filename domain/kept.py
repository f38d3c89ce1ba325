"""Records kept in memory for a while: for rows that do not change once written.

Services and organizations have no mutation that edits them yet, and every booking
reads both: keeping them spares a booking two of its PostgreSQL round trips. They
are kept at most `seconds`, so a future edit shows everywhere within that time; the
mutation that edits one must also call `forget` (in its own process at once).
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

    async def get_or_load(self, key: K, load: Callable[[K], Awaitable[V | None]]) -> V | None:
        """The kept record, or the one `load` finds (kept from then on)."""
        found = self.get(key)
        if found is None:
            found = await load(key)
            if found is not None:
                self.put(key, found)
        return found
