"""Live pushes across real `uvicorn app:app` processes that share PostgreSQL and Redis:
a change made over HTTP on one process reaches a subscriber of the other, and Redis dying
and coming back mid-subscription costs no push (whoever watches gets a fresh snapshot)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.booking_api import create
from tests.business import Person, create_business, sign_up
from tests.conftest import GraphQLClient
from tests.processes import (
    Apps,
    RedisServer,
    app_processes,
    own_database,
    owned_redis,
    running_apps,
)
from tests.race_helpers import as_utc
from tests.realtime_helpers import (
    PUSH,
    book,
    cancel,
    data_for,
    day_window,
    monday,
    push_where,
    starts,
)
from tests.test_availability_api import local
from tests.ws_client import AVAILABILITY_CHANGED, BOOKING_CHANGED, LEGACY_WS, TRANSPORT_WS, socket

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

# On a database of their own: the relay of any other process on the session's database
# (the in-process test server's, say) could take these processes' events to its own bus.
realtime_apps = app_processes("realtime_apps", database="own")


@contextlib.contextmanager
def logs_on_failure(apps: Apps) -> Iterator[None]:
    """A failure inside says what the processes logged."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(f"{error}\n{apps.logs()}") from error


def no_faults_logged(apps: Apps, mark: list[int] | None = None) -> None:
    logs = apps.logs(since=mark)
    assert "Traceback" not in logs, logs
    assert "ERROR" not in logs, logs


# ---- two processes, one Redis ------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_booking_on_one_process_pushes_availability_on_the_other(
    realtime_apps: Apps, protocol: str
) -> None:
    mark = realtime_apps.mark()
    a, _ = realtime_apps.processes
    async with realtime_apps.clients() as [_, on_b]:
        biz = await create_business(on_b)
        customer = await sign_up(on_b)
        async with socket(a.base_url, protocol) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            sid = await ws.subscribe(
                AVAILABILITY_CHANGED, {"serviceId": biz.service_id, **day_window(monday())}
            )
            first = starts(await data_for(ws, sid))
            assert len(first) == 16
            ten = local(monday(), 10)
            booking = await book(on_b, customer, biz.service_id, ten, biz.staff_ids[0])
            second = starts(await data_for(ws, sid, PUSH))
            assert set(first) - set(second) == {booking["start"]}
            assert len(second) == len(first) - 1

            # And the cancel, made on B as well, gives the slot back on A.
            await cancel(on_b, customer.token, booking["id"])
            third = starts(await data_for(ws, sid, PUSH))
            assert third == first
    no_faults_logged(realtime_apps, mark)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cancel_on_one_process_pushes_booking_changed_on_the_other(
    realtime_apps: Apps, protocol: str
) -> None:
    mark = realtime_apps.mark()
    a, _ = realtime_apps.processes
    async with realtime_apps.clients() as [_, on_b]:
        biz = await create_business(on_b)
        customer = await sign_up(on_b)
        booking = await book(on_b, customer, biz.service_id, local(monday(), 11), biz.staff_ids[0])
        async with socket(a.base_url, protocol) as ws:
            assert (await ws.init(customer.token))["type"] == "connection_ack"
            sid = await ws.subscribe(BOOKING_CHANGED, {"id": booking["id"]})
            seen = (await data_for(ws, sid))["data"]["bookingChanged"]
            assert seen == {
                "id": booking["id"],
                "status": "CONFIRMED",
                "start": booking["start"],
                "end": booking["end"],
            }
            await cancel(on_b, customer.token, booking["id"], reason="cannot come")
            pushed = (await data_for(ws, sid, PUSH))["data"]["bookingChanged"]
            assert pushed == {**seen, "status": "CANCELLED"}
    no_faults_logged(realtime_apps, mark)


# ---- Redis killed and restarted mid-subscription -----------------------------------------


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    async with owned_redis() as server:
        yield server


async def test_redis_restart_mid_subscription_pushes_a_fresh_snapshot(
    redis_server: RedisServer,
) -> None:
    """Two processes on a Redis of the test's own. While it is dead, bookings made on B
    succeed, and their events cannot reach A. Once it is back (same port), every live
    availabilityChanged subscriber on A gets a fresh snapshot, even one whose window did
    not change, and later changes are pushed again."""
    async with (
        own_database() as database_url,
        running_apps(database_url, count=2, redis_url=redis_server.url) as apps,
        apps.clients() as [_, on_b],
    ):
        await restart_mid_subscription(apps, on_b, redis_server)


async def restart_mid_subscription(
    apps: Apps, on_b: GraphQLClient, redis_server: RedisServer
) -> None:
    with logs_on_failure(apps):
        a, _ = apps.processes
        biz = await create_business(on_b, hours=[("08:00", "20:00")])
        other = await create_business(on_b)  # a window no booking here touches
        people: list[Person] = [await sign_up(on_b) for _ in range(3)]
        staff = biz.staff_ids[0]
        day = monday()
        async with socket(a.base_url) as ws, socket(a.base_url) as quiet:
            assert (await ws.init())["type"] == "connection_ack"
            assert (await quiet.init())["type"] == "connection_ack"
            sid = await ws.subscribe(
                AVAILABILITY_CHANGED, {"serviceId": biz.service_id, **day_window(day)}
            )
            qid = await quiet.subscribe(
                AVAILABILITY_CHANGED, {"serviceId": other.service_id, **day_window(day)}
            )
            first = starts(await data_for(ws, sid))
            untouched = await data_for(quiet, qid)
            assert len(first) == 24

            # Redis up: B's booking reaches A.
            up = await book(on_b, people[0], biz.service_id, local(day, 8), staff)
            assert starts(await data_for(ws, sid, PUSH)) == [s for s in first if s != up["start"]]

            # Redis gone without a goodbye: bookings on B still succeed.
            mark = apps.mark()
            redis_server.kill()
            down = []
            for person, hour in zip(people[1:], (9, 10), strict=True):
                began = time.monotonic()
                result = await create(
                    on_b,
                    person.token,
                    serviceId=biz.service_id,
                    start=local(day, hour),
                    staffId=staff,
                )
                assert result["errors"] == [], result
                assert time.monotonic() - began < 5.0
                down.append(result["booking"]["start"])
            assert down == [as_utc(local(day, 9)), as_utc(local(day, 10))]

            # Back on the same port: a fresh snapshot with what was booked meanwhile.
            await redis_server.start()
            expected = [s for s in first if s not in {up["start"], *down}]
            await push_where(ws, sid, lambda p: starts(p) == expected, 20)
            # The quiet window changed not at all, and is pushed afresh all the same.
            assert await data_for(quiet, qid, 20) == untouched

            # Later changes are pushed too.
            later = await book(on_b, people[0], biz.service_id, local(day, 15), staff)
            after, _ = await push_where(ws, sid, lambda p: later["start"] not in starts(p))
            assert starts(after) == [s for s in expected if s != later["start"]]
        logs = apps.logs(since=mark)
    assert "Redis is back" in logs, logs
    assert "Traceback" not in logs, logs
