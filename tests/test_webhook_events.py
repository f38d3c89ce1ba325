"""Webhook events derived from bookings, end to end: an app process (its own database,
loopback endpoints allowed) runs the outbox consumer and the dispatcher as `make run`
does; an organization's endpoint on a loopback receiver that verifies each delivery with
the `standardwebhooks` library gets one event per change, in order, with a stable id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest_asyncio

from tests.booking_api import CANCEL, RESCHEDULE, create
from tests.business import create_business, sign_up
from tests.conftest import GraphQLClient
from tests.processes import own_database, running_apps
from tests.test_notifications import BERLIN, at, next_monday
from tests.test_payments import CONFIRM_PAYMENT, book, paid_business
from tests.test_webhooks import create_over_api
from tests.webhook_receiver import Receiver, receiver

EVERY_EVENT = [
    "BOOKING_CREATED",
    "BOOKING_CONFIRMED",
    "BOOKING_CANCELLED",
    "BOOKING_RESCHEDULED",
    "BOOKING_DECLINED",
    "BOOKING_EXPIRED",
    "BOOKING_COMPLETED",
    "BOOKING_NO_SHOW",
    "PAYMENT_SUCCEEDED",
    "PAYMENT_REFUNDED",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api() -> AsyncIterator[str]:
    settings = {"WEBHOOK_ALLOW_LOOPBACK": "true"}
    async with (
        own_database() as url,
        running_apps(url, count=1, redis_url=None, settings=settings) as apps,
    ):
        yield apps.processes[0].base_url


@pytest_asyncio.fixture(loop_scope="session")
async def gql(api: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        yield GraphQLClient(http)


async def events_at(hooks: Receiver, count: int, within: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while len(hooks.received) < count:
        assert time.monotonic() < deadline, [r.event for r in hooks.received]
        await asyncio.sleep(0.05)
    assert all(r.verified for r in hooks.received), [r.error for r in hooks.received]
    return [r.event for r in hooks.received]


async def test_each_change_of_a_booking_is_one_verified_event(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    async with receiver() as hooks:
        made = await create_over_api(gql, biz.owner.token, biz.org_id, hooks.url(), EVERY_EVENT)
        assert made["errors"] == [], made
        hooks.secrets["/hooks"] = made["signingSecret"]
        start = at(next_monday(), 10, BERLIN)
        booked = await create(
            gql, customer.token, serviceId=biz.service_id, start=start.isoformat()
        )
        booking_id = booked["booking"]["id"]
        moved = {"bookingId": booking_id, "start": at(next_monday(), 11, BERLIN).isoformat()}
        await gql.data(RESCHEDULE, {"input": moved | {"idempotencyKey": "m"}}, customer.token)
        await gql.data(CANCEL, {"input": {"bookingId": booking_id}}, customer.token)
        found = await events_at(hooks, 4)
        await asyncio.sleep(0.5)  # nothing more comes
        assert len(hooks.received) == 4
    assert [e["type"] for e in found] == [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.cancelled",
    ]
    assert {e["data"]["booking"]["id"] for e in found} == {booking_id}
    assert datetime.fromisoformat(found[2]["data"]["previousStart"]) == start
    assert found[2]["data"]["previousStart"].endswith("Z")
    assert found[3]["data"]["booking"]["status"] == "CANCELLED"
    assert len({e["id"] for e in found}) == 4
    assert len({r.headers["webhook-id"] for r in hooks.received}) == 4


async def test_a_payment_is_an_event_of_its_own(gql: GraphQLClient) -> None:
    biz = await paid_business(gql)
    async with receiver() as hooks:
        made = await create_over_api(
            gql, biz.owner.token, biz.org_id, hooks.url(), ["PAYMENT_SUCCEEDED"]
        )
        hooks.secrets["/hooks"] = made["signingSecret"]
        booked = await book(gql, biz, None)
        booking, token = booked["booking"], booked["manageToken"]
        paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
        assert paid["confirmPayment"]["errors"] == []
        (event,) = await events_at(hooks, 1)
    assert event["type"] == "payment.succeeded"
    assert event["data"]["payment"]["status"] == "SUCCEEDED"
    assert event["data"]["booking"]["id"] == booking["id"]
