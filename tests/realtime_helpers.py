"""Helpers for the realtime tests: windows, pushes, bookings over the public API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from tests.booking_api import CANCEL, create
from tests.business import Person
from tests.conftest import GraphQLClient
from tests.race_helpers import as_utc
from tests.test_availability_api import local, next_weekday
from tests.ws_client import Socket

# How long a push may take to arrive. Generous: a push normally takes milliseconds, but
# the processes, PostgreSQL and Redis share a couple of cores with the test.
PUSH = 10.0


def day_window(day: date, days: int = 1) -> dict[str, str]:
    start = datetime.fromisoformat(local(day, 0))
    return {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}


def monday() -> date:
    return next_weekday(0)


def slots_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    data = payload.get("data")
    assert isinstance(data, dict), payload
    assert "errors" not in payload, payload
    slots: list[dict[str, Any]] = data["availabilityChanged"]["slots"]
    return slots


def starts(payload: dict[str, Any]) -> list[str]:
    return [s["start"] for s in slots_of(payload)]


def capacity(payload: dict[str, Any]) -> dict[str, int]:
    """Remaining capacity by slot start."""
    return {s["start"]: s["remainingCapacity"] for s in slots_of(payload)}


async def book(
    gql: GraphQLClient, person: Person, service_id: str, start: str, staff_id: str | None
) -> dict[str, Any]:
    """A booking that must succeed: its payload's booking."""
    result = await create(gql, person.token, serviceId=service_id, start=start, staffId=staff_id)
    assert result["errors"] == [], (start, result)
    assert result["booking"]["start"] == as_utc(start)
    booking: dict[str, Any] = result["booking"]
    return booking


async def cancel(gql: GraphQLClient, token: str | None, booking_id: str, **extra: Any) -> None:
    data = await gql.data(CANCEL, {"input": {"bookingId": booking_id, **extra}}, token)
    assert data["cancelBooking"]["errors"] == [], data
    assert data["cancelBooking"]["booking"]["status"] == "CANCELLED"


async def next_for(ws: Socket, subscription_id: str, seconds: float = PUSH) -> dict[str, Any]:
    """The next message for `subscription_id`; fails on a message for another id, or
    when none comes within `seconds`."""
    try:
        message = await ws.next(seconds)
    except TimeoutError:
        raise AssertionError(f"no message for {subscription_id} in {seconds} s") from None
    assert message.get("id") == subscription_id, message
    return message


async def data_for(ws: Socket, subscription_id: str, seconds: float = PUSH) -> dict[str, Any]:
    """The payload of the next `next`/`data` message, which must be for `subscription_id`."""
    message = await next_for(ws, subscription_id, seconds)
    assert message["type"] in ("next", "data"), message
    payload: dict[str, Any] = message["payload"]
    return payload


async def push_where(
    ws: Socket,
    subscription_id: str,
    wanted: Callable[[dict[str, Any]], bool],
    seconds: float = PUSH,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Reads pushes for `subscription_id` until one is `wanted`: it, and those before it."""
    deadline = time.monotonic() + seconds
    before: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no wanted push in {seconds} s; got {before}"
        try:
            message = await ws.next(left)
        except TimeoutError:
            raise AssertionError(f"no wanted push in {seconds} s; got {before}") from None
        assert message.get("id") == subscription_id, message
        assert message["type"] in ("next", "data"), message
        payload: dict[str, Any] = message["payload"]
        if wanted(payload):
            return payload, before
        before.append(payload)


async def nothing_for(ws: Socket, seconds: float) -> None:
    """Asserts no message (keep-alives aside) arrives within `seconds`."""
    try:
        message = await ws.next(seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {message}")


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


async def until(check: Callable[[], Any], seconds: float = PUSH, every: float = 0.02) -> None:
    """Polls `check` (sync or async, truthy when done) until it holds."""
    deadline = time.monotonic() + seconds
    while True:
        done = check()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(every)
