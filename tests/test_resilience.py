"""infra/resilience.py on its own: the circuit breaker's states and their log lines, its one
trial at a time, what counts against it; retries with jitter; the time limit."""

from __future__ import annotations

import asyncio
import logging
import traceback

import pytest

from infra.resilience import Breaker, BreakerOpen, retrying, within

RESET = 0.05  # seconds
OPENED = "remote unavailable: circuit opened, calls fail fast for 0.05 s (ConnectionError: refused)"


class Remote:
    """A fake service: fails with `error` while `down`, counts the calls that reach it."""

    def __init__(self) -> None:
        self.down = False
        self.error: BaseException = ConnectionError("refused")
        self.calls = 0

    async def call(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down:
            raise self.error
        return "ok"


async def through(breaker: Breaker, remote: Remote) -> str:
    """What the caller sees: the answer, or the kind of error."""
    try:
        async with breaker:
            return await remote.call()
    except BreakerOpen:
        return "refused"
    except Exception as error:
        return type(error).__name__


def state_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "infra.resilience"]


async def test_a_breaker_opens_refuses_half_opens_and_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="infra.resilience")
    breaker = Breaker("remote", fail_max=3, reset_timeout=RESET, failures=(OSError,))
    remote = Remote()
    assert (breaker.state, breaker.failures) == ("closed", 0)
    assert await through(breaker, remote) == "ok"

    remote.down = True
    for failures in (1, 2):
        assert await through(breaker, remote) == "ConnectionError"
        assert (breaker.state, breaker.failures) == ("closed", failures)
    assert state_lines(caplog) == []
    assert await through(breaker, remote) == "ConnectionError"
    assert breaker.state == "opened"
    assert state_lines(caplog) == [OPENED]

    # Open: refused without a call.
    for _ in range(50):
        assert await through(breaker, remote) == "refused"
    assert remote.calls == 4

    # Half-open while still down: one trial, which opens it again.
    await asyncio.sleep(RESET * 1.5)
    assert await through(breaker, remote) == "ConnectionError"
    assert await through(breaker, remote) == "refused"
    assert remote.calls == 5
    assert breaker.state == "opened"

    # Back: the trial closes it, and calls go through again.
    remote.down = False
    await asyncio.sleep(RESET * 1.5)
    assert [await through(breaker, remote) for _ in range(3)] == ["ok"] * 3
    assert (breaker.state, breaker.failures) == ("closed", 0)
    assert state_lines(caplog)[1:] == [
        "remote: circuit half-open, one trial call",
        OPENED,
        "remote: circuit half-open, one trial call",
        "remote is back: circuit closed",
    ]
    assert all(r.levelno <= logging.WARNING for r in caplog.records)


async def test_a_success_between_failures_starts_the_count_again() -> None:
    breaker = Breaker("remote", fail_max=2, reset_timeout=RESET, failures=(OSError,))
    remote = Remote()
    for down in (True, False, True, False, True):
        remote.down = down
        await through(breaker, remote)
    assert breaker.state == "closed"
    assert breaker.failures == 1


async def test_half_open_lets_one_trial_through_at_a_time() -> None:
    breaker = Breaker("remote", fail_max=1, reset_timeout=RESET, failures=(OSError,))
    remote = Remote()
    remote.down = True
    await through(breaker, remote)
    assert breaker.state == "opened"
    await asyncio.sleep(RESET * 1.5)
    remote.down = False
    release = asyncio.Event()

    async def slow() -> str:
        async with breaker:
            await release.wait()
            return await remote.call()

    trial = asyncio.create_task(slow())
    await asyncio.sleep(0.01)
    assert breaker.state == "half-opened"
    # While the trial is out, everyone else is refused at once.
    assert [await through(breaker, remote) for _ in range(5)] == ["refused"] * 5
    release.set()
    assert await trial == "ok"
    assert breaker.state == "closed"
    assert await through(breaker, remote) == "ok"


async def test_only_the_listed_failures_count(caplog: pytest.LogCaptureFixture) -> None:
    """An answer the caller did not like, or a cancelled call, says nothing about whether
    the other side is up."""
    breaker = Breaker("remote", fail_max=2, reset_timeout=RESET, failures=(OSError,))
    remote = Remote()
    remote.down = True
    remote.error = ValueError("bad request")
    for _ in range(5):
        assert await through(breaker, remote) == "ValueError"
    assert (breaker.state, breaker.failures) == ("closed", 0)

    started = asyncio.Event()

    async def hangs() -> None:
        async with breaker:
            started.set()
            await asyncio.sleep(10)

    for _ in range(3):
        started.clear()
        task = asyncio.create_task(hangs())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (breaker.state, breaker.failures) == ("closed", 0)
    assert state_lines(caplog) == []


async def test_a_call_that_began_before_the_circuit_opened_decides_nothing() -> None:
    breaker = Breaker("remote", fail_max=1, reset_timeout=RESET, failures=(OSError,))
    remote = Remote()
    release = asyncio.Event()

    async def early() -> str:
        async with breaker:
            await release.wait()
            return "late success"

    task = asyncio.create_task(early())
    await asyncio.sleep(0)
    remote.down = True
    assert await through(breaker, remote) == "ConnectionError"
    assert breaker.state == "opened"
    release.set()
    assert await task == "late success"
    assert breaker.state == "opened"


async def test_as_a_decorator() -> None:
    breaker = Breaker("remote", fail_max=1, reset_timeout=60)
    calls: list[int] = []

    @breaker
    async def fetch(n: int) -> int:
        calls.append(n)
        if n < 0:
            raise RuntimeError("down")
        return n * 2

    assert await fetch(2) == 4
    with pytest.raises(RuntimeError):
        await fetch(-1)
    with pytest.raises(BreakerOpen, match="circuit remote is open"):
        await fetch(3)
    assert calls == [2, -1]


async def test_refusals_do_not_pile_up_tracebacks() -> None:
    """purgatory raises one OpenedState object for every refusal; left alone, its
    traceback would grow with each (memory, while a dependency is down)."""
    breaker = Breaker("remote", fail_max=1, reset_timeout=60, failures=(OSError,))
    remote = Remote()
    remote.down = True
    await through(breaker, remote)
    refusal: BreakerOpen | None = None
    for _ in range(1_000):
        try:
            async with breaker:
                pass
        except BreakerOpen as error:
            refusal = error
    assert refusal is not None
    assert len(traceback.extract_tb(refusal.__traceback__)) < 5
    opened = refusal.__context__
    assert opened is not None
    assert opened.__traceback__ is None


# ---- retrying --------------------------------------------------------------------------


class Flaky:
    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"try {self.calls}")
        return "ok"


async def test_retrying_waits_with_jitter_and_then_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="infra.resilience")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(failures=6)
    policy = retrying(attempts=None, first_wait=0.1, max_wait=0.5, sleep=sleep, name="remote")
    assert await policy(flaky) == "ok"
    assert flaky.calls == 7
    # Full jitter: anywhere between 0 and 0.1, 0.2, 0.4, then at most 0.5.
    assert len(waits) == 6
    for wait, bound in zip(waits, (0.1, 0.2, 0.4, 0.5, 0.5, 0.5), strict=True):
        assert 0 <= wait <= bound
    assert len(set(waits)) > 1
    lines = state_lines(caplog)
    assert len(lines) == 6
    assert lines[0].startswith("remote: try 1 failed (ConnectionError: try 1), again in ")


async def test_retrying_gives_up_with_the_last_error() -> None:
    async def sleep(seconds: float) -> None:
        pass

    flaky = Flaky(failures=10)

    async def three_tries() -> None:
        async for attempt in retrying(attempts=3, sleep=sleep):
            with attempt:
                await flaky()

    with pytest.raises(ConnectionError, match="try 3"):
        await three_tries()
    assert flaky.calls == 3


async def test_retrying_leaves_other_errors_alone() -> None:
    flaky = Flaky(failures=1, error=KeyError)
    with pytest.raises(KeyError):
        await retrying(on=(OSError,), attempts=5)(flaky)
    assert flaky.calls == 1


async def test_retrying_stops_after_its_time() -> None:
    flaky = Flaky(failures=1_000)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ConnectionError):
        await retrying(attempts=None, seconds=0.2, first_wait=0.01, max_wait=0.02)(flaky)
    assert 0.15 < loop.time() - began < 1.0
    assert flaky.calls > 5


async def test_a_cancelled_retry_loop_stops() -> None:
    flaky = Flaky(failures=1_000)
    policy = retrying(attempts=None, first_wait=0.01, max_wait=0.01)
    task: asyncio.Task[str] = asyncio.create_task(policy(flaky))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = flaky.calls
    await asyncio.sleep(0.05)
    assert flaky.calls == calls


async def test_within_bounds_a_call() -> None:
    with pytest.raises(TimeoutError):
        async with within(0.02):
            await asyncio.sleep(10)
    async with within(None):
        await asyncio.sleep(0)
