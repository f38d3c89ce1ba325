"""Redis goes away and comes back: bookings keep working and a race for one slot still has
exactly one winner, because PostgreSQL decides. And RedisSlotLock itself, against a
redis-server of the test's own (killed, paused and restarted at will)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from domain.booking.slot_lock import TTL_MS, UNGUARDED, RedisSlotLock, redis_breaker
from tests.booking_api import CREATE, create, key
from tests.business import Person, create_business, sign_up
from tests.conftest import GraphQLClient
from tests.processes import REDIS_PREFIX, RedisServer, owned_redis, redis_client, running_apps
from tests.race_helpers import Request, as_utc, booked, codes, db_key, fetch, payloads, race
from tests.test_availability_api import local, next_weekday

# The app's Redis client gives up after 0.25 s; a booking with Redis gone may be slower
# than usual, but not by much.
SLOW_BOOKING = 5.0


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    async with owned_redis() as server:
        yield server


def slots() -> Iterator[str]:
    """Free starts of a 30-minute service worked 08:00-20:00: Monday's, then Tuesday's."""
    monday = next_weekday(0)
    for day in (monday, monday + timedelta(days=1)):
        for i in range(24):
            yield local(day, 8 + i // 2, 30 * (i % 2))


# ---- the app, end to end ------------------------------------------------------------------


async def test_bookings_survive_a_redis_outage(
    database_url: str, redis_server: RedisServer
) -> None:
    async with (
        running_apps(database_url, count=1, redis_url=redis_server.url) as apps,
        apps.clients() as [gql],
    ):
        biz = await create_business(gql, hours=[("08:00", "20:00")])
        staff = biz.staff_ids[0]
        gate = asyncio.Semaphore(4)

        async def person(i: int) -> Person:
            async with gate:
                return await sign_up(gql, name=f"Outage {i:02d}")

        people = list(await asyncio.gather(*(person(i) for i in range(12))))
        free = slots()
        made: list[str] = []

        async def book(customer: Person) -> float:
            """Books the next free slot; how long it took."""
            start = next(free)
            began = time.monotonic()
            result = await create(
                gql, customer.token, serviceId=biz.service_id, start=start, staffId=staff
            )
            took = time.monotonic() - began
            assert result["errors"] == [], (start, result)
            assert result["booking"]["start"] == as_utc(start)
            made.append(start)
            return took

        # Redis up: the booking works, and goes through the fast path.
        await book(people[0])
        assert await redis_server.command_calls("set") >= 1
        assert await redis_server.command_calls("eval") >= 1  # the release

        # Redis gone without a goodbye: bookings for other slots still succeed.
        redis_server.kill()
        for customer in people[1:6]:
            took = await book(customer)
            assert took < SLOW_BOOKING

        # A race for one slot while Redis is down: PostgreSQL alone picks one winner.
        contested = next(free)
        requests: list[Request] = [
            (
                CREATE,
                {
                    "input": {
                        "serviceId": biz.service_id,
                        "start": contested,
                        "staffId": staff,
                        "idempotencyKey": key(),
                    }
                },
                customer.token,
            )
            for customer in people[1:11]
        ]
        results = payloads(await race([gql], requests), "createBooking")
        won = [r for r in results if r["errors"] == []]
        assert len(won) == 1, [codes(r) for r in results]
        assert [codes(r) for r in results if r["errors"]] == [
            [("SLOT_UNAVAILABLE", "input.start")]
        ] * 9
        bookings, claims = await booked(database_url, staff, contested)
        assert [b["id"] for b in bookings] == [db_key(won[0]["booking"]["id"], "Booking")]
        assert len(claims) == 1
        made.append(contested)

        # Redis back on the same port: bookings keep working, and once the circuit
        # breaker's cooldown (5 s) has passed, they use the fast path again.
        await redis_server.start()
        await book(people[11])
        deadline = time.monotonic() + 15
        while await redis_server.command_calls("set") == 0:
            assert time.monotonic() < deadline, "the fast path never came back"
            await asyncio.sleep(1)
            await book(people[len(made) % len(people)])

        logs = apps.logs()

    # Every booking made is there, once, and nothing else.
    rows = await fetch(
        database_url,
        "SELECT start_at FROM claims WHERE resource_id = $1 ORDER BY start_at",
        db_key(staff, "Staff"),
    )
    assert [as_utc(r["start_at"].isoformat()) for r in rows] == sorted(as_utc(s) for s in made)
    assert "Redis slot lock unavailable: circuit opened" in logs  # the breaker opened
    assert "Traceback" not in logs, logs


# ---- RedisSlotLock, unit level ------------------------------------------------------------


def slot_key() -> str:
    return f"slot:{uuid.uuid4()}:1900000000"


async def test_slot_lock_acquire_contend_and_compare_and_delete(
    redis_server: RedisServer,
) -> None:
    client = redis_client(redis_server.url)
    try:
        lock = RedisSlotLock(client, REDIS_PREFIX)
        other = RedisSlotLock(client, REDIS_PREFIX)  # another request, another process
        key = slot_key()
        token = await lock.acquire(key)
        assert token is not None
        assert token != UNGUARDED
        assert await client.get(REDIS_PREFIX + key) == token.encode()
        assert 0 < await client.pttl(REDIS_PREFIX + key) <= TTL_MS
        assert await lock.acquire(key) is None
        assert await other.acquire(key) is None

        # Release is compare-and-delete: a wrong token releases nothing.
        await other.release(key, "not-the-token")
        await other.release(key, UNGUARDED)
        assert await client.get(REDIS_PREFIX + key) == token.encode()
        assert await other.acquire(key) is None
        await lock.release(key, token)
        assert await client.exists(REDIS_PREFIX + key) == 0
        second = await other.acquire(key)
        assert second not in (None, UNGUARDED, token)

        # A holder whose lease expired (here: deleted) must not release its successor's.
        assert second is not None
        await client.delete(REDIS_PREFIX + key)
        third = await lock.acquire(key)
        assert third is not None
        await other.release(key, second)
        assert await client.get(REDIS_PREFIX + key) == third.encode()
        await lock.release(key, third)
        assert await client.exists(REDIS_PREFIX + key) == 0

        # Keys live under the prefix only.
        assert [k async for k in client.scan_iter(match="slot:*")] == []
        assert lock.breaker.failures == 0
        assert lock.breaker.state == "closed"
    finally:
        await client.aclose()


class CountingCalls:
    """Wraps a client method and counts the calls that reach it."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self.method(*args, **kwargs)


async def acquire_timed(lock: RedisSlotLock, key: str) -> tuple[str | None, float]:
    began = time.monotonic()
    token = await lock.acquire(key)
    return token, time.monotonic() - began


async def test_slot_lock_steps_aside_when_redis_is_killed(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_client(redis_server.url)
    try:
        breaker = redis_breaker(fail_max=3, reset_timeout=60)
        lock = RedisSlotLock(client, REDIS_PREFIX, breaker)
        held = slot_key()
        token = await lock.acquire(held)  # a pooled connection, now broken by the kill
        assert token not in (None, UNGUARDED)
        redis_server.kill()

        sets = CountingCalls(client.set)
        monkeypatch.setattr(client, "set", sets)
        for failures in (1, 2, 3):
            got, took = await acquire_timed(lock, held)
            assert got == UNGUARDED  # the caller proceeds; PostgreSQL decides
            assert took < 1.0
            assert breaker.failures == (failures if failures < 3 else 0)
            assert breaker.state == ("closed" if failures < 3 else "opened")
        assert sets.calls == 3

        # Open: no more calls to Redis at all, and no waiting.
        began = time.monotonic()
        for _ in range(200):
            assert await lock.acquire(slot_key()) == UNGUARDED
        assert sets.calls == 3
        assert time.monotonic() - began < 0.1
        assert token is not None
        await lock.release(held, token)  # fails quietly: the lease expires by itself
        await lock.release(held, UNGUARDED)
    finally:
        await client.aclose()


async def test_slot_lock_when_redis_hangs_then_recovers(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paused redis-server keeps its connections open and answers nothing: each try
    costs the client's 0.25 s timeout until the breaker opens; after the cooldown one try
    decides whether it closes again."""
    client = redis_client(redis_server.url)
    try:
        breaker = redis_breaker(fail_max=3, reset_timeout=0.5)
        lock = RedisSlotLock(client, REDIS_PREFIX, breaker)
        warm = await lock.acquire(slot_key())
        assert warm not in (None, UNGUARDED)
        sets = CountingCalls(client.set)
        monkeypatch.setattr(client, "set", sets)

        redis_server.pause()
        for _ in range(3):
            got, took = await acquire_timed(lock, slot_key())
            assert got == UNGUARDED
            assert took < 1.0
        assert breaker.state == "opened"
        # Open: answered at once, without a call (a call would cost 0.25 s).
        for _ in range(20):
            got, took = await acquire_timed(lock, slot_key())
            assert got == UNGUARDED
            assert took < 0.1
        assert sets.calls == 3

        # Half-open while still down: one try, which fails and opens it again.
        await asyncio.sleep(breaker.reset_timeout + 0.05)
        for _ in range(5):
            assert (await acquire_timed(lock, slot_key()))[0] == UNGUARDED
        assert sets.calls == 4
        assert breaker.state == "opened"

        # Back: after the cooldown one successful try closes the breaker.
        redis_server.resume()
        await asyncio.sleep(breaker.reset_timeout + 0.05)
        key = slot_key()
        token = await lock.acquire(key)
        assert token not in (None, UNGUARDED)
        assert breaker.state == "closed"
        assert breaker.failures == 0
        assert await lock.acquire(key) is None
        assert token is not None
        await lock.release(key, token)
        assert await client.exists(REDIS_PREFIX + key) == 0
    finally:
        await client.aclose()


async def test_app_answers_while_redis_hangs(database_url: str, redis_server: RedisServer) -> None:
    """A paused redis-server (accepts, never answers) costs a booking at most the client's
    timeout, then nothing once the breaker is open."""
    async with (
        running_apps(database_url, count=1, redis_url=redis_server.url) as apps,
        apps.clients() as [gql],
    ):
        biz = await create_business(gql, hours=[("08:00", "20:00")])
        customer = await sign_up(gql)
        free = slots()
        await book_ok(gql, customer, biz.service_id, biz.staff_ids[0], next(free))
        redis_server.pause()
        try:
            for _ in range(5):
                began = time.monotonic()
                await book_ok(gql, customer, biz.service_id, biz.staff_ids[0], next(free))
                assert time.monotonic() - began < SLOW_BOOKING
        finally:
            redis_server.resume()
        logs = apps.logs()
    assert "Redis slot lock unavailable: circuit opened" in logs
    assert "Traceback" not in logs, logs


async def book_ok(
    gql: GraphQLClient, customer: Person, service_id: str, staff_id: str, start: str
) -> None:
    result = await create(gql, customer.token, serviceId=service_id, start=start, staffId=staff_id)
    assert result["errors"] == [], (start, result)
