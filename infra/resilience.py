"""Calls to the outside (Redis now; Stripe, SMTP, calendar providers later): a time limit,
retries with jitter, a circuit breaker. Three small pieces that compose:

    breaker = Breaker("Stripe", fail_max=5, reset_timeout=30,
                      failures=(httpx.TransportError, TimeoutError))

    async with breaker, within(5.0):           # BreakerOpen at once while it is open
        answer = await client.get(url)

    async for attempt in retrying(on=(httpx.TransportError, TimeoutError), attempts=3):
        with attempt:                           # idempotent calls only; BreakerOpen ends it
            async with breaker, within(5.0):
                answer = await client.get(url)

`within` is asyncio's timeout; `retrying` is tenacity's AsyncRetrying with exponential
backoff and full jitter (many processes that lost one server do not come back to it in
step); `Breaker` is purgatory's circuit breaker with each change of state logged, one line
each, and one trial call at a time while half-open.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from purgatory import AsyncCircuitBreakerFactory, ContextChanged, Event
from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    stop_never,
    wait_random_exponential,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Exceptions = type[BaseException] | tuple[type[BaseException], ...]


def within(seconds: float | None) -> asyncio.Timeout:
    """`async with within(2.0):` cancels the block after that long and raises TimeoutError
    (None: no limit). asyncio's timeout, not wait_for: on Python 3.11 wait_for can swallow
    a cancellation that arrives as the awaited call ends."""
    return asyncio.timeout(seconds)


def retrying(
    *,
    on: Exceptions = (OSError, TimeoutError),
    attempts: int | None = 3,
    seconds: float | None = None,
    first_wait: float = 0.1,
    max_wait: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    name: str | None = None,
) -> AsyncRetrying:
    """Tries again after an error of `on`, for calls that may safely run twice.

    Waits are random between 0 and `first_wait` * 2^n (at most `max_wait`): exponential
    backoff with full jitter. Stops after `attempts` tries or once `seconds` have passed
    (no wait runs past them), whichever comes first; both None: until it succeeds or the
    task is cancelled. Then the last error is raised as it was. Any other error, and a
    cancellation, ends it at once. `sleep` is how to wait (a background loop's own
    pause, say). With a `name`, each retry is logged at INFO.

    `async for attempt in retrying(...): with attempt: ...`, or
    `await retrying(...)(function, *args)`, or `retrying(...).wraps(function)`.
    """
    stops: list[stop_base] = []
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    if seconds is not None:
        stops.append(stop_before_delay(seconds))  # no try that would end past it
    return AsyncRetrying(
        retry=retry_if_exception_type(on),
        wait=wait_random_exponential(multiplier=first_wait, max=max_wait),
        stop=stop_any(*stops) if stops else stop_never,
        sleep=sleep,
        reraise=True,
        before_sleep=_log_retry(name) if name else None,
    )


def _log_retry(name: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        number = state.attempt_number
        log.info("%s: try %d failed (%s), again in %.2f s", name, number, _describe(error), wait)

    return before_sleep


class BreakerOpen(Exception):
    """Raised instead of making the call while the circuit is open."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit {name} is open")
        self.name = name


class Breaker:
    """A circuit breaker: opens after `fail_max` failed calls in a row, then refuses every
    call at once (BreakerOpen) for `reset_timeout` seconds; after that it is half-open: one
    trial call goes through (the others are refused meanwhile), and its outcome closes the
    circuit or opens it again.

    Only errors of `failures` count against it. A call ending in any other exception (a
    cancellation, an answer that says the other side is up but disliked the request)
    leaves the circuit as it was; so does the outcome of a call that began before the
    circuit opened. Wrap the call in `within(...)` too: a call that hangs decides nothing.

    `async with breaker:` around one call, or `@breaker` on a coroutine function. The state
    is this process's own (purgatory's in-memory store).
    """

    def __init__(
        self,
        name: str,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        *,
        failures: Exceptions = Exception,
    ) -> None:
        self.name = name
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.counted = failures
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=fail_max, default_ttl=reset_timeout
        )
        self._factory.add_listener(self._changed)
        self._circuit: AsyncCircuitBreaker | None = None
        self._trial: tuple[asyncio.Task[Any], float] | None = None
        self._last_error = "no error"  # what the last counted failure was, for the log

    @property
    def state(self) -> str:
        """closed, opened or half-opened (purgatory's names). An open circuit whose time
        is up turns half-open at its next call."""
        return "closed" if self._circuit is None else self._circuit.context.state

    @property
    def failures(self) -> int:
        """Failed calls in a row while closed (0 otherwise)."""
        return 0 if self._circuit is None else self._circuit.context.failure_count or 0

    async def __aenter__(self) -> None:
        if self._circuit is None:
            self._circuit = await self._factory.get_breaker(self.name)
        circuit = self._circuit
        try:
            await circuit.__aenter__()
        except OpenedState as opened:
            # purgatory raises its one OpenedState again and again: left as it is, its
            # traceback grows by a few frames with each refused call.
            opened.__traceback__ = opened.__context__ = None
            raise BreakerOpen(self.name) from None
        await self._announce(circuit)  # the half-open line, when this call made it so
        if circuit.context.state == "half-opened":
            now = time.monotonic()
            if self._trial is not None and now - self._trial[1] < self.reset_timeout:
                raise BreakerOpen(self.name)  # one trial at a time
            task = asyncio.current_task()
            assert task is not None
            self._trial = (task, now)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        circuit = self._circuit
        assert circuit is not None
        trial = self._trial is not None and self._trial[0] is asyncio.current_task()
        if trial:
            self._trial = None
        elif circuit.context.state != "closed":
            return  # began before the circuit opened: old news
        if exc is None:
            await circuit.__aexit__(None, None, None)
        elif isinstance(exc, self.counted):
            self._last_error = _describe(exc)
            await circuit.__aexit__(exc_type, exc, tb)

    def __call__(self, function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """As a decorator: each call of `function` goes through the breaker."""

        @functools.wraps(function)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            async with self:
                return await function(*args, **kwargs)

        return guarded

    async def _announce(self, circuit: AsyncCircuitBreaker) -> None:
        while circuit.context.messages:
            await circuit.messagebus.handle(circuit.context.messages.pop(0), circuit.uow)

    def _changed(self, name: str, kind: str, event: Event) -> None:
        if not isinstance(event, ContextChanged):
            return
        if event.state == "opened":
            log.warning(
                "%s unavailable: circuit opened, calls fail fast for %g s (%s)",
                self.name,
                self.reset_timeout,
                self._last_error,
            )
        elif event.state == "half-opened":
            log.info("%s: circuit half-open, one trial call", self.name)
        else:  # a warning too, to be read next to the one that said it opened
            log.warning("%s is back: circuit closed", self.name)

    def __repr__(self) -> str:
        return f"<Breaker {self.name} {self.state}>"


def _describe(error: BaseException | None) -> str:
    """`ConnectionError: Error 111 connecting to ...`: the kind of error and its message."""
    if error is None:
        return "no error"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
