"""Nothing live reaches a viewer who may not read it: bookingChanged only for those the
`booking` query answers (customer, guest with the manage token, its staff member,
OWNER/ADMIN), on both protocols; availabilityChanged shows slots and staff, never who
booked them. In-process server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from domain import events
from infra.ids import key_of
from tests.booking_api import RESCHEDULE, create, key
from tests.business import ADD_STAFF, SET_WEEK, WEEKDAYS, create_business, payload, sign_up
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import as_utc
from tests.realtime_helpers import (
    PUSH,
    cancel,
    data_for,
    day_window,
    monday,
    next_for,
    nothing_for,
    starts,
)
from tests.test_availability_api import local
from tests.test_catalog import ADD_TIME_OFF
from tests.ws_client import AVAILABILITY_CHANGED, LEGACY_WS, TRANSPORT_WS, Socket, socket

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

BOOKING_CHANGED = """
subscription($id: ID!, $token: String) {
  bookingChanged(bookingId: $id, manageToken: $token) {
    id status start guestName guestEmail notes customer { id email name } staff { id }
  }
}"""


def refused_codes(message: dict[str, Any], protocol: str) -> list[str]:
    """The codes of an `error` message (graphql-ws sends one error, not a list)."""
    assert message["type"] == "error", message
    errors = [message["payload"]] if protocol == LEGACY_WS else message["payload"]
    assert "data" not in json.dumps(errors), errors
    return [e["extensions"]["code"] for e in errors]


async def marker(ws: Socket, service_id: str) -> tuple[str, list[str]]:
    """An availabilityChanged subscription on the same connection, as a clock: once it is
    pushed a change, any push for the same change would have arrived before it."""
    mid = await ws.subscribe(
        AVAILABILITY_CHANGED, {"serviceId": service_id, **day_window(monday())}
    )
    return mid, starts(await data_for(ws, mid))


async def guest_booking(gql: GraphQLClient, service_id: str, start: str) -> tuple[str, str]:
    """A booking by a guest (nobody signed in): its id and manage token."""
    result = await create(
        gql,
        serviceId=service_id,
        start=start,
        notes="guest notes, private",
        guest={"name": "Grace Guest", "email": f"grace-{uuid.uuid4().hex[:8]}@example.com"},
    )
    assert result["errors"] == [], result
    return result["booking"]["id"], result["manageToken"]


# ---- bookingChanged ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_stranger_gets_an_error_and_no_booking_changed(
    gql: GraphQLClient, server: Server, protocol: str
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql, name="Carla Customer")
    stranger = await sign_up(gql)
    made = await create(
        gql,
        customer.token,
        serviceId=biz.service_id,
        start=local(monday(), 11),
        staffId=biz.staff_ids[0],
        notes="customer notes, private",
    )
    assert made["errors"] == []
    booking_id = made["booking"]["id"]
    async with socket(server.base_url, protocol) as ws:
        assert (await ws.init(stranger.token))["type"] == "connection_ack"
        sid = await ws.subscribe(BOOKING_CHANGED, {"id": booking_id})
        assert refused_codes(await next_for(ws, sid), protocol) == ["NOT_FOUND"]
        mid, before = await marker(ws, biz.service_id)
        # The booking changes: the stranger sees the slot come back, nothing else.
        await cancel(gql, customer.token, booking_id)
        after = starts(await data_for(ws, mid, PUSH))
        assert set(after) - set(before) == {made["booking"]["start"]}
        await nothing_for(ws, 0.3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_guest_booking_is_live_only_with_its_manage_token(
    gql: GraphQLClient, server: Server, protocol: str
) -> None:
    biz = await create_business(gql)
    stranger = await sign_up(gql)
    booking_id, token = await guest_booking(gql, biz.service_id, local(monday(), 10))
    wrong = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    async with (
        socket(server.base_url, protocol) as guest,
        socket(server.base_url, protocol) as anonymous,
        socket(server.base_url, protocol) as signed_in,
    ):
        for ws, bearer in ((guest, None), (anonymous, None), (signed_in, stranger.token)):
            assert (await ws.init(bearer))["type"] == "connection_ack"
        gid = await guest.subscribe(BOOKING_CHANGED, {"id": booking_id, "token": token})
        seen = (await data_for(guest, gid))["data"]["bookingChanged"]
        assert seen["status"] == "CONFIRMED"
        assert seen["guestName"] == "Grace Guest"
        assert seen["customer"] is None

        for ws, variables in (
            (anonymous, {"id": booking_id}),
            (anonymous, {"id": booking_id, "token": wrong}),
            (anonymous, {"id": booking_id, "token": ""}),
            (signed_in, {"id": booking_id}),
            (signed_in, {"id": booking_id, "token": wrong}),
        ):
            sid = await ws.subscribe(BOOKING_CHANGED, variables)
            assert refused_codes(await next_for(ws, sid), protocol) == ["NOT_FOUND"], variables
        marks = [await marker(ws, biz.service_id) for ws in (anonymous, signed_in)]

        # The guest cancels with the token: pushed to the guest; the others see only
        # the slot come back.
        await cancel(gql, None, booking_id, manageToken=token)
        pushed = (await data_for(guest, gid, PUSH))["data"]["bookingChanged"]
        assert pushed == {**seen, "status": "CANCELLED"}
        for ws, (mid, before) in zip((anonymous, signed_in), marks, strict=True):
            after = starts(await data_for(ws, mid, PUSH))
            assert len(after) == len(before) + 1
            await nothing_for(ws, 0.2)


async def test_a_staff_member_moved_off_a_booking_stops_seeing_it(
    gql: GraphQLClient, server: Server
) -> None:
    """The booking's staff member reads it live until the owner gives it to a colleague;
    then an error ends the subscription, and the new state never reaches them."""
    biz = await create_business(gql)
    member = await sign_up(gql, name="Sam Staff", verified=True)
    added = await payload(
        gql,
        ADD_STAFF,
        {
            "organizationId": biz.org_id,
            "name": "Sam Staff",
            "email": member.email,
            "serviceIds": [biz.service_id],
        },
        biz.owner.token,
        "addStaff",
    )
    sam = added["staff"]["id"]
    week = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in WEEKDAYS[:5]]
    await payload(
        gql, SET_WEEK, {"staffId": sam, "hours": week}, biz.owner.token, "setWeeklySchedule"
    )
    customer = await sign_up(gql)
    made = await create(
        gql, customer.token, serviceId=biz.service_id, start=local(monday(), 14), staffId=sam
    )
    assert made["errors"] == [], made
    booking_id = made["booking"]["id"]

    async with socket(server.base_url) as ws:
        assert (await ws.init(member.token))["type"] == "connection_ack"
        sid = await ws.subscribe(BOOKING_CHANGED, {"id": booking_id})
        seen = (await data_for(ws, sid))["data"]["bookingChanged"]
        assert seen["staff"] == {"id": sam}
        mid, _ = await marker(ws, biz.service_id)

        moved = await gql.data(
            RESCHEDULE,
            {
                "input": {
                    "bookingId": booking_id,
                    "start": local(monday(), 15),
                    "staffId": biz.staff_ids[0],
                    "idempotencyKey": key(),
                }
            },
            biz.owner.token,
        )
        assert moved["rescheduleBooking"]["errors"] == [], moved
        # The subscription ends with an error (graphql-transport-ws: `error` ends the
        # operation, no `complete` follows it); the marker's push, in whatever order.
        got = {}
        for _ in range(2):
            message = await ws.next(PUSH)
            assert message["id"] not in got, message
            got[message["id"]] = message
        assert refused_codes(got[sid], TRANSPORT_WS) == ["NOT_FOUND"]
        assert got[mid]["type"] == "next"
        await nothing_for(ws, 0.3)


# ---- availabilityChanged shows no customer data ------------------------------------------

WINDOW = "$serviceId: ID!, $start: DateTime!, $end: DateTime!"
ARGS = "serviceId: $serviceId, start: $start, end: $end"
# Everything public around a window, then what only members may see.
DOCUMENTS = {
    "public": f"""subscription({WINDOW}) {{ availabilityChanged({ARGS}) {{
      timeZone
      service {{ id name organization {{ id slug name }} staff {{ id name }} }}
      slots {{ start end remainingCapacity staff {{ id name timeZone }} }}
      days {{ date slots {{ start staff {{ id }} }} }} }} }}""",
    "bookings": f"""subscription({WINDOW}) {{ availabilityChanged({ARGS}) {{
      service {{ organization {{ bookings {{ edges {{ node {{
        id reference guestName guestEmail notes customer {{ id email name }} }} }} }} }} }}
      }} }}""",
    "time off": f"""subscription({WINDOW}) {{ availabilityChanged({ARGS}) {{
      slots {{ start staff {{ id timeOff(start: $start, end: $end) {{ reason }} }} }} }} }}""",
}


async def test_availability_pushes_carry_no_customer_data_for_strangers(
    gql: GraphQLClient, server: Server
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql, name="Priya Private")
    stranger = await sign_up(gql)
    await payload(
        gql,
        ADD_TIME_OFF,
        {
            "organizationId": biz.org_id,
            "staffId": biz.staff_ids[0],
            "start": local(monday(), 12),
            "end": local(monday(), 13),
            "reason": "dentist, private",
        },
        biz.owner.token,
        "addTimeOff",
    )
    guest_id, _ = await guest_booking(gql, biz.service_id, local(monday(), 9))
    variables = {"serviceId": biz.service_id, **day_window(monday())}
    secrets = [
        customer.email,
        "Priya Private",
        "customer notes, private",
        "Grace Guest",
        "guest notes, private",
        "dentist, private",
        guest_id,
    ]

    async with (
        socket(server.base_url) as owner,
        socket(server.base_url) as outsider,
        socket(server.base_url, LEGACY_WS) as anonymous,
    ):
        viewers = {"owner": owner, "stranger": outsider, "anonymous": anonymous}
        tokens = {"owner": biz.owner.token, "stranger": stranger.token, "anonymous": None}
        ids: dict[str, dict[str, str]] = {}
        seen: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for who, ws in viewers.items():
            assert (await ws.init(tokens[who]))["type"] == "connection_ack"
            ids[who] = {
                await ws.subscribe(document, variables): name
                for name, document in DOCUMENTS.items()
            }
            seen[who] = {name: [] for name in DOCUMENTS}

        async def read_one_each() -> None:
            for who, ws in viewers.items():
                for _ in DOCUMENTS:
                    message = await ws.next(PUSH)
                    assert message["type"] in ("next", "data"), message
                    seen[who][ids[who][message["id"]]].append(message["payload"])

        await read_one_each()  # the snapshots
        made = await create(
            gql,
            customer.token,
            serviceId=biz.service_id,
            start=local(monday(), 10),
            staffId=biz.staff_ids[0],
            notes="customer notes, private",
        )
        assert made["errors"] == [], made
        secrets += [made["booking"]["id"], made["booking"]["reference"]]
        await read_one_each()  # the pushes: the slot is gone
        for who in viewers:
            assert as_utc(local(monday(), 10)) not in starts(seen[who]["public"][-1])

    # The owner (the control) sees everything: the bookings, who made them, the time off.
    owner_sees = json.dumps(seen["owner"]["bookings"][-1]) + json.dumps(
        seen["owner"]["time off"][-1]
    )
    assert [s for s in secrets if s not in owner_sees] == [], owner_sees

    # Strangers and the anonymous see slots and staff, nothing about who booked, and are
    # refused what is for members only.
    for who in ("stranger", "anonymous"):
        shown = json.dumps(seen[who])
        assert [s for s in secrets if s in shown] == [], shown
        assert seen[who]["public"] == seen["owner"]["public"]
        for name in ("bookings", "time off"):
            for refused in seen[who][name]:
                assert refused["data"] is None, refused
                [error] = refused["errors"]
                assert error["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED"), error


async def test_an_event_that_changes_nothing_visible_pushes_nothing(
    gql: GraphQLClient, server: Server
) -> None:
    """A BookingChanged that reaches a feed after its snapshot already showed the change
    (a late relay, a replayed batch) must not push the same booking again: the next
    push a subscriber sees is the next real change."""
    biz = await create_business(gql)
    booking_id, token = await guest_booking(gql, biz.service_id, local(monday(), 11))
    async with socket(server.base_url, TRANSPORT_WS) as guest:
        assert (await guest.init(None))["type"] == "connection_ack"
        gid = await guest.subscribe(BOOKING_CHANGED, {"id": booking_id, "token": token})
        seen = (await data_for(guest, gid))["data"]["bookingChanged"]
        key = key_of(booking_id, "Booking")
        assert key is not None
        organization = uuid.UUID(int=0)  # feeds look at the booking id alone
        server.app_state.realtime.feeds.changed([events.BookingChanged(key, organization)])
        await nothing_for(guest, 0.3)
        await cancel(gql, None, booking_id, manageToken=token)
        pushed = (await data_for(guest, gid, PUSH))["data"]["bookingChanged"]
        assert pushed == {**seen, "status": "CANCELLED"}
