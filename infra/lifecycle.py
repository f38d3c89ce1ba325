"""How background tasks end: a cancellation always ends their loop, and shutdown never
waits on any of them for longer than it was given."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("booking")


def cancelling() -> bool:
    """Whether the current task has been asked to stop, even if the CancelledError has
    since turned into another error (a rollback that failed on its way out, say)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def pause(seconds: float) -> None:
    """A loop's wait before its next round: ends the loop instead when its task is
    being cancelled, so a cancellation caught by an `except Exception` in disguise still
    stops it."""
    if cancelling():
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancels a background task and waits until it has ended (its `finally` run)."""
    if task is not None:
        task.cancel()
        await asyncio.wait({task})


Step = tuple[str, Callable[[], Awaitable[object]]]


async def shut_down(steps: Sequence[Step], seconds: float) -> None:
    """Runs the steps in turn, all within `seconds`. A step still running when the time
    is up is cancelled and left behind with a warning, and the next ones get whatever
    time is left: a process asked to stop stops. `asyncio.wait` because it never waits
    for the step's own cancellation to finish (`wait_for` and `timeout` would)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for name, step in steps:
        task = asyncio.ensure_future(step())
        done, _ = await asyncio.wait({task}, timeout=max(deadline - loop.time(), 0.0))
        if not done:
            task.cancel()
            log.warning("shutdown: gave up on %s (%.1f s for all steps)", name, seconds)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("shutdown: %s failed", name, exc_info=task.exception())
