"""Subscriptions over a real WebSocket, both protocols, against the in-process server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from tests.booking_api import create
from tests.business import SET_WEEK, WEEKDAYS, create_business, payload, sign_up
from tests.conftest import GraphQLClient, Server
from tests.test_availability_api import local, next_weekday
from tests.ws_client import (
    AVAILABILITY_CHANGED,
    BOOKING_CHANGED,
    LEGACY_WS,
    TRANSPORT_WS,
    socket,
)

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]


def monday_window() -> dict[str, str]:
    day = next_weekday(0)
    start = datetime.fromisoformat(local(day, 0))
    return {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}


def starts(payload: dict[str, object]) -> list[str]:
    data = payload["data"]
    assert isinstance(data, dict), payload
    return [s["start"] for s in data["availabilityChanged"]["slots"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_snapshot_then_a_push_when_a_booking_takes_a_slot(
    gql: GraphQLClient, server: Server, protocol: str
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    async with socket(server.base_url, protocol) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.subscribe(AVAILABILITY_CHANGED, {"serviceId": biz.service_id, **monday_window()})
        first = starts(await ws.data())
        assert len(first) == 16  # 09:00-17:00, 30-minute slots
        ten = local(next_weekday(0), 10)
        booked = await create(
            gql, customer.token, serviceId=biz.service_id, start=ten, staffId=biz.staff_ids[0]
        )
        assert booked["errors"] == []
        second = starts(await ws.data())
        assert len(second) == len(first) - 1
        assert set(first) - set(second) == {booked["booking"]["start"]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_nothing_runs_before_connection_init(server: Server, protocol: str) -> None:
    async with socket(server.base_url, protocol) as ws:
        await ws.subscribe("subscription { __typename }", {})
        code, _ = await ws.closed()
        assert code == 4401


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_bad_token_in_connection_init_closes_with_4403(
    server: Server, protocol: str
) -> None:
    async with socket(server.base_url, protocol) as ws:
        await ws.send({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})
        code, _ = await ws.closed()
        assert code == 4403


async def test_booking_changed_for_its_customer_and_nobody_else(
    gql: GraphQLClient, server: Server
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    stranger = await sign_up(gql)
    booked = await create(
        gql,
        customer.token,
        serviceId=biz.service_id,
        start=local(next_weekday(1), 11),
        staffId=biz.staff_ids[0],
    )
    booking_id = booked["booking"]["id"]
    async with socket(server.base_url) as ws:
        await ws.init(stranger.token)
        await ws.subscribe(BOOKING_CHANGED, {"id": booking_id})
        refused = await ws.next()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "NOT_FOUND"
    async with socket(server.base_url) as ws:
        await ws.init(customer.token)
        await ws.subscribe(BOOKING_CHANGED, {"id": booking_id})
        assert (await ws.data())["data"]["bookingChanged"]["status"] == "CONFIRMED"
        cancelled = await gql.data(
            """mutation($id: ID!) { cancelBooking(input: {bookingId: $id}) {
                 booking { status } errors { code } } }""",
            {"id": booking_id},
            customer.token,
        )
        assert cancelled["cancelBooking"]["errors"] == []
        assert (await ws.data())["data"]["bookingChanged"]["status"] == "CANCELLED"


async def test_a_new_subscriber_does_not_make_others_receive_the_same_answer_again(
    gql: GraphQLClient, server: Server
) -> None:
    """A change that leaves the window's offer as it was pushes nothing, and someone
    subscribing afterwards gets their snapshot without the others getting it again."""
    biz = await create_business(gql)
    variables = {"serviceId": biz.service_id, **monday_window()}
    async with socket(server.base_url) as first, socket(server.base_url) as second:
        await first.init()
        await first.subscribe(AVAILABILITY_CHANGED, variables)
        snapshot = await first.data()
        same_week = [{"weekday": day, "start": "09:00", "end": "17:00"} for day in WEEKDAYS[:5]]
        await payload(
            gql,
            SET_WEEK,
            {"staffId": biz.staff_ids[0], "hours": same_week},
            biz.owner.token,
            "setWeeklySchedule",
        )
        await asyncio.sleep(0.5)  # the window is computed again (50 ms after the change)
        await second.init()
        await second.subscribe(AVAILABILITY_CHANGED, variables)
        assert await second.data() == snapshot
        with pytest.raises(TimeoutError):
            await first.next(seconds=1.0)
