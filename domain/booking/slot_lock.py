"""The fast path in front of PostgreSQL: a short lock per (staff member, start).

Racing requests for one slot fail fast here instead of queueing on the database.
It is not the guarantee: a lease can expire while its holder is paused (GC, swap,
a slow network), and then two holders believe they own it (Kleppmann, "How to do
distributed locking"). The exclusion constraint on `claims` is what makes a double
booking impossible; this lock only saves work. When Redis is unreachable the lock
steps aside (a circuit breaker, infra/resilience.py, stops asking for a while) and
PostgreSQL alone decides: slower under contention, never wrong.
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from infra.resilience import Breaker, BreakerOpen

# Held only for one transaction; long enough for a slow commit, short enough that a
# crashed holder does not block a slot for long.
TTL_MS = 5_000
# The token returned when the fast path is unavailable: the caller proceeds.
UNGUARDED = "unguarded"

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def redis_breaker(fail_max: int = 3, reset_timeout: float = 5.0) -> Breaker:
    """Three failed calls in a row open it; 5 s later one try decides. Each failed call
    costs at most the client's timeout (0.25 s in app.py), an open breaker nothing."""
    return Breaker(
        "Redis slot lock",
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        failures=(RedisError, OSError),
    )


class SlotLock(Protocol):
    async def acquire(self, key: str) -> str | None:
        """A token when acquired (or UNGUARDED), None when someone else holds it."""

    async def release(self, key: str, token: str) -> None: ...


class LocalSlotLock:
    """In-process locks, for a single process without REDIS_URL."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, key: str) -> str | None:
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return None
        token = secrets.token_hex(8)
        self._held[key] = (token, now + TTL_MS / 1000)
        if len(self._held) > 10_000:  # forget expired leases now and then
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._held.get(key)
        if held is not None and held[0] == token:
            del self._held[key]


class RedisSlotLock:
    def __init__(self, redis: Redis, prefix: str, breaker: Breaker | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breaker = breaker or redis_breaker()

    async def acquire(self, key: str) -> str | None:
        token = secrets.token_hex(8)
        try:
            async with self.breaker:
                acquired = await self.redis.set(self.prefix + key, token, nx=True, px=TTL_MS)
        except (BreakerOpen, RedisError, OSError):
            return UNGUARDED
        return token if acquired else None

    async def release(self, key: str, token: str) -> None:
        if token == UNGUARDED:
            return
        try:
            async with self.breaker:
                await self.redis.eval(_RELEASE, 1, self.prefix + key, token)
        except (BreakerOpen, RedisError, OSError):
            pass  # the lease expires by itself
