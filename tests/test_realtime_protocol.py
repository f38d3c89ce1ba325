"""The WebSocket protocols' rules, both protocols where they apply, against the in-process
server: initialisation, subprotocols, ids, the per-connection subscription limit and
`complete`/`stop`."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tests.business import Business, Person, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.realtime_helpers import (
    PUSH,
    book,
    data_for,
    day_window,
    monday,
    next_for,
    nothing_for,
    starts,
)
from tests.test_availability_api import local
from tests.ws_client import AVAILABILITY_CHANGED, LEGACY_WS, TRANSPORT_WS, socket, ws_url

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]
# A small answer, so that a hundred of them stay small.
TIME_ZONE_ONLY = """
subscription($serviceId: ID!, $start: DateTime!, $end: DateTime!) {
  availabilityChanged(serviceId: $serviceId, start: $start, end: $end) { timeZone }
}"""


async def business(gql: GraphQLClient) -> tuple[Business, Person]:
    return await create_business(gql), await sign_up(gql)


# ---- connection_init ---------------------------------------------------------------------


async def test_a_second_connection_init_closes_with_4429(server: Server) -> None:
    async with socket(server.base_url, TRANSPORT_WS) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.send({"type": "connection_init", "payload": {}})
        code, _ = await ws.closed()
        assert code == 4429


async def test_a_second_connection_init_before_the_ack_closes_with_4429(server: Server) -> None:
    async with socket(server.base_url, TRANSPORT_WS) as ws:
        await ws.send({"type": "connection_init", "payload": {}})
        await ws.send({"type": "connection_init", "payload": {}})
        code, _ = await ws.closed()
        assert code == 4429


# ---- subprotocols ------------------------------------------------------------------------


@pytest.mark.parametrize("offered", [["graphql-unknown"], None, ["graphql", "subscriptions-ws"]])
async def test_an_unknown_subprotocol_is_refused(server: Server, offered: list[str] | None) -> None:
    """None: no Sec-WebSocket-Protocol header at all."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            ws_url(server.base_url),
            subprotocols=None if offered is None else [Subprotocol(p) for p in offered],
            open_timeout=5,
            compression=None,
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_both_offered_picks_graphql_transport_ws(server: Server) -> None:
    async with connect(
        ws_url(server.base_url),
        subprotocols=[Subprotocol(LEGACY_WS), Subprotocol(TRANSPORT_WS)],
        open_timeout=5,
        compression=None,
    ) as connection:
        assert connection.subprotocol == TRANSPORT_WS


# ---- subscription ids --------------------------------------------------------------------


async def test_a_duplicate_subscription_id_closes_with_4409(
    gql: GraphQLClient, server: Server
) -> None:
    biz, _ = await business(gql)
    variables = {"serviceId": biz.service_id, **day_window(monday())}
    async with socket(server.base_url, TRANSPORT_WS) as ws:
        await ws.init()
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "same")
        assert starts(await data_for(ws, "same"))
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "same")
        code, reason = await ws.closed()
        assert code == 4409
        assert reason == "Subscriber for same already exists"


async def test_a_finished_id_may_be_used_again(gql: GraphQLClient, server: Server) -> None:
    biz, _ = await business(gql)
    variables = {"serviceId": biz.service_id, **day_window(monday())}
    async with socket(server.base_url, TRANSPORT_WS) as ws:
        await ws.init()
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "again")
        first = await data_for(ws, "again")
        await ws.send({"type": "complete", "id": "again"})
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "again")
        assert await data_for(ws, "again") == first


async def test_legacy_restarts_a_duplicate_id(gql: GraphQLClient, server: Server) -> None:
    """graphql-ws has no 4409: a `start` with an id in use replaces that operation."""
    biz, customer = await business(gql)
    variables = {"serviceId": biz.service_id, **day_window(monday())}
    async with socket(server.base_url, LEGACY_WS) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "same")
        first = starts(await data_for(ws, "same"))
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "same")
        assert starts(await data_for(ws, "same")) == first
        # One operation under that id, not two: one push per change.
        booking = await book(gql, customer, biz.service_id, local(monday(), 9), biz.staff_ids[0])
        assert starts(await data_for(ws, "same", PUSH)) == [
            s for s in first if s != booking["start"]
        ]
        await nothing_for(ws, 0.5)


# ---- at most 100 subscriptions per connection --------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_101st_subscription_is_rate_limited(
    gql: GraphQLClient, server: Server, protocol: str
) -> None:
    biz, _ = await business(gql)
    variables = {"serviceId": biz.service_id, **day_window(monday())}
    async with socket(server.base_url, protocol) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        for i in range(100):
            await ws.subscribe(TIME_ZONE_ONLY, variables, f"s{i}")
        for i in range(100):
            payload = await data_for(ws, f"s{i}")
            assert payload == {"data": {"availabilityChanged": {"timeZone": "Europe/Berlin"}}}
        await ws.subscribe(TIME_ZONE_ONLY, variables, "s100")
        refused = await next_for(ws, "s100")
        assert refused["type"] == "error", refused
        errors = [refused["payload"]] if protocol == LEGACY_WS else refused["payload"]
        assert [e["extensions"]["code"] for e in errors] == ["RATE_LIMITED"]

        # The connection is still open, and one finished subscription makes room.
        await ws.send({"type": "stop" if protocol == LEGACY_WS else "complete", "id": "s0"})
        if protocol == LEGACY_WS:
            assert await next_for(ws, "s0") == {"type": "complete", "id": "s0"}
        await ws.subscribe(TIME_ZONE_ONLY, variables, "s101")
        assert (await data_for(ws, "s101"))["data"]["availabilityChanged"]


# ---- complete / stop ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_complete_stops_the_pushes_of_that_id(
    gql: GraphQLClient, server: Server, protocol: str
) -> None:
    biz, customer = await business(gql)
    variables = {"serviceId": biz.service_id, **day_window(monday())}
    async with socket(server.base_url, protocol) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        # Two subscriptions to one window (they share one feed on the server).
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "stopped")
        first = starts(await data_for(ws, "stopped"))
        await ws.subscribe(AVAILABILITY_CHANGED, variables, "kept")
        assert starts(await data_for(ws, "kept")) == first

        await ws.send({"type": "stop" if protocol == LEGACY_WS else "complete", "id": "stopped"})
        if protocol == LEGACY_WS:
            assert await next_for(ws, "stopped") == {"type": "complete", "id": "stopped"}
        booking = await book(gql, customer, biz.service_id, local(monday(), 9), biz.staff_ids[0])
        # The kept one is pushed; the stopped one is not, then or later.
        assert starts(await data_for(ws, "kept", PUSH)) == [
            s for s in first if s != booking["start"]
        ]
        await nothing_for(ws, 0.5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_completing_an_unknown_id_is_harmless(server: Server, protocol: str) -> None:
    async with socket(server.base_url, protocol) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.send({"type": "stop" if protocol == LEGACY_WS else "complete", "id": "nope"})
        if protocol == TRANSPORT_WS:
            await ws.send({"type": "ping"})
            assert (await asyncio.wait_for(ws.connection.recv(), PUSH)) == '{"type":"pong"}'
        else:
            await nothing_for(ws, 0.3)
        assert ws.connection.close_code is None
