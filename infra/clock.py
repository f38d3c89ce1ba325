"""What time it is, and waking up at a time: injected, so that tests move time instead
of sleeping.

`SYSTEM_CLOCK` is the real one (the app's default). `ManualClock` stands still until a
test moves it; the calls it was asked for fall due as it passes their time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, in UTC."""
        ...

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Timer:
        """Calls `callback` (in the running event loop) once `when` has come."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Timer:
        delay = max((when - self.now()).total_seconds(), 0.0)
        return asyncio.get_running_loop().call_later(delay, callback)


SYSTEM_CLOCK = SystemClock()


class ManualTimer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock for tests: `now()` stays where it was set; `advance` moves it and runs,
    before it returns and in order of their time, the calls that fell due."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(UTC)).astimezone(UTC)
        self._due: list[tuple[datetime, int, ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Timer:
        timer = ManualTimer(callback)
        if when <= self._now:
            # Already due: soon, as the event loop would call a timer in the past.
            return asyncio.get_running_loop().call_soon(callback)
        heapq.heappush(self._due, (when, next(self._order), timer))
        return timer

    def advance(self, by: timedelta | float) -> None:
        """Moves the clock forward by `by` (seconds when a number)."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError("a clock does not go back")
        self.move_to(self._now + step)

    def move_to(self, when: datetime) -> None:
        """Sets the clock to `when` (not before now), running the calls due by then."""
        if when < self._now:
            raise ValueError("a clock does not go back")
        while self._due and self._due[0][0] <= when:
            at, _, timer = heapq.heappop(self._due)
            self._now = at  # each call sees the time it was due at
            if not timer.cancelled:
                timer.callback()
        self._now = when.astimezone(UTC)

    @property
    def pending(self) -> int:
        """Calls not yet due (and not cancelled)."""
        return sum(1 for _, _, timer in self._due if not timer.cancelled)
