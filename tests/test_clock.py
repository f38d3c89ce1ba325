"""The injectable clock (infra/clock.py): the system one, and the one tests move."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from infra.clock import SYSTEM_CLOCK, ManualClock

START = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def test_the_system_clock_tells_utc_time() -> None:
    before = datetime.now(UTC)
    now = SYSTEM_CLOCK.now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


async def test_the_system_clock_calls_back_at_the_time() -> None:
    called = asyncio.Event()
    SYSTEM_CLOCK.call_at(SYSTEM_CLOCK.now() + timedelta(milliseconds=20), called.set)
    await asyncio.wait_for(called.wait(), 5)
    cancelled: list[str] = []
    SYSTEM_CLOCK.call_at(SYSTEM_CLOCK.now(), lambda: cancelled.append("x")).cancel()
    await asyncio.sleep(0.01)
    assert cancelled == []


async def test_a_manual_clock_stands_still_until_moved_and_runs_what_falls_due() -> None:
    clock = ManualClock(START)
    seen: list[tuple[str, datetime]] = []
    clock.call_at(START + timedelta(minutes=2), lambda: seen.append(("two", clock.now())))
    clock.call_at(START + timedelta(minutes=1), lambda: seen.append(("one", clock.now())))
    dropped = clock.call_at(START + timedelta(minutes=1), lambda: seen.append(("no", clock.now())))
    dropped.cancel()
    assert clock.now() == START
    assert clock.pending == 2
    clock.advance(30)
    assert seen == []
    clock.advance(timedelta(minutes=5))
    # In order, each seeing the time it was due at; the clock then where it was moved.
    assert seen == [("one", START + timedelta(minutes=1)), ("two", START + timedelta(minutes=2))]
    assert clock.now() == START + timedelta(minutes=5, seconds=30)
    assert clock.pending == 0
    # Already due: called soon, as the event loop calls a timer in the past.
    clock.call_at(START, lambda: seen.append(("past", clock.now())))
    await asyncio.sleep(0)
    assert seen[-1][0] == "past"


def test_a_manual_clock_does_not_go_back() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="back"):
        clock.move_to(START - timedelta(seconds=1))
