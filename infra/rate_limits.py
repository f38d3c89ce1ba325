"""Rate limits: how often one client address, or one target (an e-mail address, a phone
number), may try something. The rules and their figures are below (docs/identity.md says
why each); `RATE_LIMITS` overrides them (tests, load tests).

    await rate_limits.hit("sign_in", ip=client_ip, email=email)   # RateLimited, or None

Counted with the `limits` library, a moving window per figure: in Redis (REDIS_URL,
under REDIS_PREFIX) so every process shares the counts, else in this process. Redis is
only the shared memory of the counts, never a reason to refuse: when it fails, counting
goes on in this process (each process then allows the figures on its own) and Redis is
asked again a few seconds later. A refused attempt is not counted, so a client that keeps
retrying while refused is let in once its window has moved on.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from infra.resilience import within

log = logging.getLogger(__name__)

# rule -> what it counts by -> its figures (limits' notation: all must hold).
RULES: dict[str, dict[str, str]] = {
    "sign_in": {"ip": "30/minute;300/hour", "email": "5/minute;20/hour"},
    "phone_code": {"ip": "5/minute;20/hour", "number": "1/30 seconds;5/hour"},
    "phone_sign_in": {"ip": "20/minute;100/hour", "number": "10/minute;30/hour"},
    "guest_booking": {"ip": "10/minute;60/hour"},
    "password_reset": {"ip": "5/minute;20/hour", "email": "1/minute;5/hour"},
    "email_verification": {"ip": "10/minute;60/hour", "user": "1/minute;10/hour"},
    # GET /auth/{provider}/login: each one stores a pending sign-in.
    "third_party_login": {"ip": "20/minute;200/hour"},
}
OFF = "off"
# One attempt's counting in Redis (a few round trips); after a failure Redis is left
# alone this long.
REDIS_SECONDS = 1.0
RETRY_SECONDS = 5.0
SWEEP_SECONDS = 30.0  # how often the in-process counts drop entries past their windows
_REDIS_FAILURES = (RedisError, OSError, TimeoutError, StorageError)

Figures = dict[str, dict[str, tuple[RateLimitItem, ...]]]


class RateLimited(Exception):
    """Refused: the client may try again in `retry_after_seconds` (at least 1)."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"rate limited for {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


def parse_figures(overrides: str | None = None) -> Figures | None:
    """The figures of every rule: the defaults with `overrides` (RATE_LIMITS: a JSON
    object of "rule.key" -> figures, e.g. {"sign_in.ip": "100/minute"}), or None for
    "off" (nothing limited). ValueError says what is wrong with `overrides`."""
    text = (overrides or "").strip()
    if text.lower() == OFF:
        return None
    wanted = {rule: dict(keys) for rule, keys in RULES.items()}
    if text:
        try:
            given = json.loads(text)
        except ValueError:
            raise ValueError(
                'use "off" or a JSON object such as {"sign_in.ip": "100/minute;1000/hour"}'
            ) from None
        if not isinstance(given, dict):
            raise ValueError('use "off" or a JSON object of "rule.key": "figures"')
        for name, value in given.items():
            rule, _, key = name.partition(".")
            if key not in wanted.get(rule, {}):
                known = ", ".join(f"{r}.{k}" for r, keys in RULES.items() for k in keys)
                raise ValueError(f"no rule {name!r}; the rules are {known}")
            if not isinstance(value, str):
                raise ValueError(f"{name}: give the figures as a string, like '5/minute'")
            wanted[rule][key] = value
    parsed: Figures = {}
    for rule, keys in wanted.items():
        parsed[rule] = {}
        for key, text_figures in keys.items():
            try:
                parsed[rule][key] = tuple(parse_many(text_figures))
            except ValueError:
                raise ValueError(
                    f"{rule}.{key}: {text_figures!r} is not like '5/minute;20/hour'"
                ) from None
    return parsed


def ip_key(address: str) -> str:
    """What an address counts as: itself for IPv4, its /64 for IPv6 (one subscriber's
    usual share; counting single IPv6 addresses would let one client rotate freely)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(value: str) -> str:
    # No e-mail address or phone number in clear in Redis keys.
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


class _LocalStorage(MemoryStorage):
    """limits' MemoryStorage, sweeping out old entries at most every SWEEP_SECONDS. Its
    own sweep starts again after every hit and visits each key through a thread: a core
    kept busy once there are thousands of keys. Old entries only take memory: a window
    is read from its entries' times."""

    def __init__(self) -> None:
        super().__init__()
        self._swept_at = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # the base's private hook
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_SECONDS:
            self._swept_at = now
            await getattr(super(), "_MemoryStorage__schedule_expiry")()  # noqa: B009


class RateLimits:
    def __init__(
        self, figures: Figures | None, redis: Redis | None = None, prefix: str = ""
    ) -> None:
        self.figures = figures
        self._local = MovingWindowRateLimiter(_LocalStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if redis is not None:
            # The app's own Redis client (its pool and timeouts), keys under its prefix.
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=f"{prefix}limits",
                # Documented by limits, though its annotation of **options leaves it out.
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._redis_down = False
        self._retry_redis_at = 0.0

    async def hit(self, rule: str, **keys: str) -> None:
        """Counts one attempt of `rule` by each of `keys` (ip=..., email=...), or raises
        RateLimited (nothing counted) when any figure is used up."""
        if self.figures is None:
            return
        limits = self.figures[rule]
        unknown = set(keys) - set(limits)
        if unknown:
            raise ValueError(f"rule {rule} does not count by {sorted(unknown)}")
        items = [
            (item, (f"{rule}.{key}", _digest(value)))
            for key, value in keys.items()
            for item in limits[key]
        ]
        wait: int | None
        if self._shared is not None and time.monotonic() >= self._retry_redis_at:
            try:
                async with within(REDIS_SECONDS):
                    wait = await self._count(self._shared, items)
            except _REDIS_FAILURES as error:
                self._redis_failed(error)
            else:
                self._redis_answered()
                if wait is not None:
                    raise RateLimited(wait)
                return
        wait = await self._count(self._local, items)
        if wait is not None:
            raise RateLimited(wait)

    async def _count(
        self, limiter: MovingWindowRateLimiter, items: list[tuple[RateLimitItem, tuple[str, str]]]
    ) -> int | None:
        """Counts the attempt, or the seconds until every refusing figure allows it."""
        # All figures first, so that a refused attempt uses up none of them.
        refused = [(item, ids) for item, ids in items if not await limiter.test(item, *ids)]
        for item, ids in items if not refused else ():
            if not await limiter.hit(item, *ids):
                refused.append((item, ids))  # a concurrent attempt took the last one
                break
        if not refused:
            return None
        return max([await self._wait(limiter, item, ids) for item, ids in refused])

    @staticmethod
    async def _wait(
        limiter: MovingWindowRateLimiter, item: RateLimitItem, ids: tuple[str, str]
    ) -> int:
        stats = await limiter.get_window_stats(item, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _redis_failed(self, error: BaseException) -> None:
        self._retry_redis_at = time.monotonic() + RETRY_SECONDS
        if not self._redis_down:
            self._redis_down = True
            log.warning(
                "rate limits: Redis unavailable (%s); counting in this process until it is back",
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
            )

    def _redis_answered(self) -> None:
        if self._redis_down:
            self._redis_down = False
            log.warning("rate limits: Redis is back; counting there again")
