"""Real races over HTTP: many requests for one slot at the same moment, spread over two
`uvicorn app:app` processes that share the test database (and Redis, for the fast path).

PostgreSQL decides who wins; Redis only saves work. So every race ends the same way
with Redis up or down: as many winners as the slot has seats, SLOT_UNAVAILABLE for
everyone else, no faults, and the database agrees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from tests.booking_api import CREATE, READ, RESCHEDULE, create, key
from tests.business import Person, create_business, sign_up
from tests.processes import Apps, app_processes
from tests.race_helpers import (
    Answer,
    Request,
    as_utc,
    booked,
    codes,
    db_key,
    fetch,
    payloads,
    race,
    send,
)
from tests.test_availability_api import local, next_weekday

CUSTOMERS = 50

apps = app_processes("apps")
apps_without_redis = app_processes("apps_without_redis", redis="down")


# ---- helpers ------------------------------------------------------------------------------


def no_faults_logged(apps: Apps, mark: list[int]) -> None:
    logs = apps.logs(since=mark)
    assert "Traceback" not in logs, logs
    assert "deadlock" not in logs.lower(), logs


@pytest.fixture(scope="module")
async def customers(apps: Apps) -> list[Person]:
    """50 signed-up customers (argon2 costs ~50 ms and 64 MiB each: a few at a time)."""
    gate = asyncio.Semaphore(4)
    async with apps.clients() as clients:

        async def one(i: int) -> Person:
            async with gate:
                return await sign_up(clients[i % len(clients)], name=f"Racer {i:02d}")

        return list(await asyncio.gather(*(one(i) for i in range(CUSTOMERS))))


# ---- createBooking: one slot, many customers ----------------------------------------------


async def race_for_one_slot(
    apps: Apps, customers: list[Person], database_url: str, capacity: int
) -> None:
    mark = apps.mark()
    async with apps.clients() as clients:
        service = {"capacity": capacity, "durationMinutes": 60} if capacity > 1 else None
        biz = await create_business(clients[0], service=service)
        staff = biz.staff_ids[0]
        start = local(next_weekday(0), 10)
        requests: list[Request] = [
            (
                CREATE,
                {
                    "input": {
                        "serviceId": biz.service_id,
                        "start": start,
                        "staffId": staff,
                        "idempotencyKey": key(),
                    }
                },
                customer.token,
            )
            for customer in customers
        ]
        results = payloads(await race(clients, requests), "createBooking")

    won = [r for r in results if r["errors"] == []]
    lost = [r for r in results if r["errors"] != []]
    assert len(won) == capacity, [codes(r) for r in results]
    for result in won:
        assert result["booking"]["status"] == "CONFIRMED"
        assert result["booking"]["start"] == as_utc(start)
        assert result["booking"]["staff"] == {"id": staff}
    assert len({r["booking"]["customer"]["id"] for r in won}) == capacity
    assert len(lost) == len(customers) - capacity
    for result in lost:
        assert codes(result) == [("SLOT_UNAVAILABLE", "input.start")]
        assert result["booking"] is None

    bookings, claims = await booked(database_url, staff, start)
    winners = {db_key(r["booking"]["id"], "Booking") for r in won}
    assert {b["id"] for b in bookings} == winners
    assert len(claims) == capacity
    assert {c["booking_id"] for c in claims} == winners
    # Nothing else anywhere for this staff member either.
    everything = await fetch(
        database_url, "SELECT id FROM bookings WHERE staff_id = $1", db_key(staff, "Staff")
    )
    assert len(everything) == capacity
    no_faults_logged(apps, mark)


async def test_fifty_customers_race_for_one_slot(
    apps: Apps, customers: list[Person], database_url: str
) -> None:
    await race_for_one_slot(apps, customers, database_url, capacity=1)


async def test_fifty_customers_race_for_six_seats(
    apps: Apps, customers: list[Person], database_url: str
) -> None:
    await race_for_one_slot(apps, customers, database_url, capacity=6)


async def test_race_without_redis_still_has_one_winner(
    apps_without_redis: Apps, customers: list[Person], database_url: str
) -> None:
    """REDIS_URL names a port nobody listens on: the fast path steps aside and
    PostgreSQL alone decides."""
    await race_for_one_slot(apps_without_redis, customers, database_url, capacity=1)
    # The fast path really was down: the breaker says so in each process's log once three
    # lease attempts failed there. Whether the racers got as far as the lease depends on
    # timing (a quick winner turns the rest away at the rules check), so each process
    # also takes three more bookings, one after another.
    async with apps_without_redis.clients() as clients:
        biz = await create_business(clients[0])
        for i, client in enumerate(clients):
            for hour in (9, 10, 11):
                result = await create(
                    client,
                    customers[i].token,
                    serviceId=biz.service_id,
                    start=local(next_weekday(i), hour),
                    staffId=biz.staff_ids[0],
                )
                assert result["errors"] == [], result
    for process in apps_without_redis.processes:
        assert "Redis slot lock unavailable" in process.log(), apps_without_redis.logs()


# ---- rescheduleBooking: many bookings, one free slot --------------------------------------


async def test_twenty_reschedules_race_into_one_slot(
    apps: Apps, customers: list[Person], database_url: str
) -> None:
    mark = apps.mark()
    movers = customers[:20]
    monday = next_weekday(0)
    olds = [local(monday, 8 + i // 2, 30 * (i % 2)) for i in range(len(movers))]  # 08:00-17:30
    target = local(monday, 19)
    async with apps.clients() as clients:
        biz = await create_business(clients[0], hours=[("08:00", "20:00")])
        staff = biz.staff_ids[0]
        made = await asyncio.gather(
            *(
                create(
                    clients[i % 2],
                    person.token,
                    serviceId=biz.service_id,
                    start=olds[i],
                    staffId=staff,
                )
                for i, person in enumerate(movers)
            )
        )
        assert [m["errors"] for m in made] == [[]] * len(movers)
        ids = [m["booking"]["id"] for m in made]
        requests: list[Request] = [
            (
                RESCHEDULE,
                {
                    "input": {
                        "bookingId": ids[i],
                        "start": target,
                        "staffId": staff,
                        "idempotencyKey": key(),
                    }
                },
                person.token,
            )
            for i, person in enumerate(movers)
        ]
        answers = await race(clients, requests)
        assert [a.text for a in answers if "deadlock" in a.text.lower()] == []
        results = payloads(answers, "rescheduleBooking")

        moved = [i for i, r in enumerate(results) if r["errors"] == []]
        assert len(moved) == 1, [codes(r) for r in results]
        [winner] = moved
        assert results[winner]["booking"]["id"] == ids[winner]
        assert results[winner]["booking"]["start"] == as_utc(target)
        for i, result in enumerate(results):
            if i != winner:
                assert codes(result) == [("SLOT_UNAVAILABLE", "input.start")]
                assert result["booking"] is None

        # Everyone reads their booking back (from the other process): only one moved.
        for i, person in enumerate(movers):
            seen = (await clients[(i + 1) % 2].data(READ, {"id": ids[i]}, person.token))["booking"]
            assert seen["status"] == "CONFIRMED"
            if i == winner:
                assert seen["start"] == as_utc(target)
                assert [h["reason"] for h in seen["history"]] == [None, "rescheduled"]
            else:
                assert seen["start"] == as_utc(olds[i])
                assert [h["reason"] for h in seen["history"]] == [None]

    # The database: the winner's old seat is free, everyone else's is still taken.
    expected = sorted([*(olds[i] for i in range(len(olds)) if i != winner), target], key=as_utc)
    claims = await fetch(
        database_url,
        "SELECT start_at FROM claims WHERE resource_id = $1 ORDER BY start_at",
        db_key(staff, "Staff"),
    )
    assert [c["start_at"] for c in claims] == [datetime.fromisoformat(s) for s in expected]
    bookings, target_claims = await booked(database_url, staff, target)
    assert [b["id"] for b in bookings] == [db_key(ids[winner], "Booking")]
    assert len(target_claims) == 1
    no_faults_logged(apps, mark)


# ---- idempotency: one key, many copies at once --------------------------------------------


async def test_concurrent_replays_make_one_booking(
    apps: Apps, customers: list[Person], database_url: str
) -> None:
    mark = apps.mark()
    customer = customers[0]
    same = key()
    async with apps.clients() as clients:
        biz = await create_business(clients[0])
        staff = biz.staff_ids[0]
        start = local(next_weekday(0), 11)
        # Two spellings of the same instant are the same input.
        spellings = [start, as_utc(start)]
        requests: list[Request] = [
            (
                CREATE,
                {
                    "input": {
                        "serviceId": biz.service_id,
                        "start": spellings[(i // 2) % 2],
                        "staffId": staff,
                        "idempotencyKey": same,
                        "notes": "same every time",
                    }
                },
                customer.token,
            )
            for i in range(10)
        ]
        results = payloads(await race(clients, requests), "createBooking")

    assert [r["errors"] for r in results] == [[]] * 10
    assert len({r["booking"]["id"] for r in results}) == 1
    assert {r["booking"]["start"] for r in results} == {as_utc(start)}
    assert {r["booking"]["status"] for r in results} == {"CONFIRMED"}
    booking_id = db_key(results[0]["booking"]["id"], "Booking")
    rows = await fetch(
        database_url,
        "SELECT id FROM bookings WHERE customer_id = $1 AND service_id = $2",
        db_key(customer.user_id, "User"),
        db_key(biz.service_id, "Service"),
    )
    assert [r["id"] for r in rows] == [booking_id]
    bookings, claims = await booked(database_url, staff, start)
    assert [b["id"] for b in bookings] == [booking_id]
    assert [c["booking_id"] for c in claims] == [booking_id]
    history = await fetch(
        database_url, "SELECT status FROM booking_changes WHERE booking_id = $1", booking_id
    )
    assert len(history) == 1
    no_faults_logged(apps, mark)


# ---- staffId: null: the server picks among free staff -------------------------------------


async def any_staff_race(apps: Apps, customers: list[Person], database_url: str) -> None:
    """Ten customers, three staff members free at 10:00, nobody names one: three win, one
    per staff member. A racer must not be refused while a colleague is still free."""
    mark = apps.mark()
    async with apps.clients() as clients:
        biz = await create_business(clients[0], staff_count=3)
        start = local(next_weekday(0), 10)
        requests: list[Request] = [
            (
                CREATE,
                {"input": {"serviceId": biz.service_id, "start": start, "idempotencyKey": key()}},
                customer.token,
            )
            for customer in customers[:10]
        ]
        results = payloads(await race(clients, requests), "createBooking")
    won = [r for r in results if r["errors"] == []]
    assert sorted(r["booking"]["staff"]["id"] for r in won) == sorted(biz.staff_ids), [
        codes(r) for r in results
    ]
    assert [codes(r) for r in results if r["errors"]] == [[("SLOT_UNAVAILABLE", "input.start")]] * 7
    for staff in biz.staff_ids:
        bookings, claims = await booked(database_url, staff, start)
        assert len(bookings) == len(claims) == 1
    no_faults_logged(apps, mark)


async def test_any_staff_race_fills_every_staff_member(
    apps: Apps, customers: list[Person], database_url: str
) -> None:
    await any_staff_race(apps, customers, database_url)


async def test_any_staff_race_without_redis(
    apps_without_redis: Apps, customers: list[Person], database_url: str
) -> None:
    await any_staff_race(apps_without_redis, customers, database_url)


async def waiting_for_locks(database_url: str) -> int:
    """How many requests to the test database wait for a lock right now (the app's
    periodic sweep of expired holds aside)."""
    rows = await fetch(
        database_url,
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query NOT LIKE 'DELETE FROM claims WHERE claims.expires_at%'",
    )
    return len(rows)


async def stalled_first_booking(
    apps: Apps, customers: list[Person], database_url: str
) -> list[dict[str, Any]]:
    """Two staffId: null requests for one start with three staff members free, the second
    sent while the first is inside its transaction (stalled on a lock on `claims` that
    the test holds). Their payloads."""
    async with apps.clients() as clients:
        biz = await create_business(clients[0], staff_count=3)
        start = local(next_weekday(0), 10)

        def variables() -> dict[str, Any]:
            return {"input": {"serviceId": biz.service_id, "start": start, "idempotencyKey": key()}}

        blocker = await asyncpg.connect(database_url, timeout=10)
        sent: list[asyncio.Task[Answer]] = []
        try:
            async with blocker.transaction():
                # Reads go on; the first request's claim waits, whatever it holds meanwhile.
                await blocker.execute("LOCK TABLE claims IN EXCLUSIVE MODE")
                sent.append(
                    asyncio.create_task(send(clients[0], CREATE, variables(), customers[0].token))
                )
                await until(lambda: waiting_for_locks(database_url), at_least=1)
                sent.append(
                    asyncio.create_task(send(clients[1], CREATE, variables(), customers[1].token))
                )
                # The second either answers at once or queues behind the first.
                await until(lambda: waiting_for_locks(database_url), at_least=2, done=sent[1])
        finally:
            # The lock is gone with the transaction: what was sent finishes now.
            if sent:
                await asyncio.wait(sent)
            await blocker.close()
        answers = [task.result() for task in sent]
    return payloads(answers, "createBooking")


async def until(
    count: Callable[[], Awaitable[int]], at_least: int, done: asyncio.Task[Any] | None = None
) -> None:
    deadline = time.monotonic() + 10
    while not (done is not None and done.done()) and await count() < at_least:
        assert time.monotonic() < deadline, "the request never reached the database"
        await asyncio.sleep(0.02)


async def test_any_staff_request_is_not_refused_while_a_colleague_is_free(
    apps: Apps, customers: list[Person], database_url: str
) -> None:
    """The deterministic form of the race above: while one request is booking the first
    of three free staff members, a second request for the same start must get another
    one, not SLOT_UNAVAILABLE."""
    mark = apps.mark()
    first, second = await stalled_first_booking(apps, customers, database_url)
    assert first["errors"] == []
    assert second["errors"] == [], codes(second)
    assert first["booking"]["staff"]["id"] != second["booking"]["staff"]["id"]
    no_faults_logged(apps, mark)


async def test_any_staff_request_is_not_refused_without_redis(
    apps_without_redis: Apps, customers: list[Person], database_url: str
) -> None:
    first, second = await stalled_first_booking(apps_without_redis, customers, database_url)
    assert first["errors"] == []
    assert second["errors"] == [], codes(second)
    assert first["booking"]["staff"]["id"] != second["booking"]["staff"]["id"]
