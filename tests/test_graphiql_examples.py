"""The operations a first visit to GraphiQL opens on: valid against the schema (the
served one and schema.graphql), and each runs as written on the demo business: paying
included, with the offline provider of the test server (no STRIPE_SECRET_KEY)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate

from commands.seed import OWNER_EMAIL, OWNER_PASSWORD
from infra.settings import ROOT
from schema.root import schema
from tests.conftest import GraphQLClient, Server
from tests.demo_seed import first_service, paid_service, seed_demo
from tests.ws_client import socket
from web.graphiql import EXAMPLES


def test_the_examples_validate_against_the_schema() -> None:
    document = parse(EXAMPLES)
    exported = build_schema((ROOT / "schema.graphql").read_text())
    assert validate(schema._schema, document) == []
    assert validate(exported, document) == []
    kinds = {
        op.name.value: op.operation.value
        for op in document.definitions
        if isinstance(op, OperationDefinitionNode) and op.name
    }
    assert kinds == {
        "Availability": "query",
        "BookAsGuest": "mutation",
        "SlotsLive": "subscription",
        "BookPaid": "mutation",
        "PayInTestMode": "mutation",
        "BookingLive": "subscription",
        "SignIn": "mutation",
        "CalendarFeed": "mutation",
    }
    assert f'email: "{OWNER_EMAIL}", password: "{OWNER_PASSWORD}"' in EXAMPLES


@pytest.fixture
async def variables(database_url: str, gql: GraphQLClient) -> dict[str, Any]:
    """What the page fills in: the demo clinic's first service and first paid service,
    the next 7 days, the idempotency keys (the slots come from Availability)."""
    await seed_demo(database_url)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start += timedelta(days=1)
    return {
        "serviceId": (await first_service(gql))["id"],
        "paidServiceId": (await paid_service(gql))["id"],
        "start": start.isoformat(),
        "end": (start + timedelta(days=7)).isoformat(),
        "key": uuid.uuid4().hex,
        "paidKey": uuid.uuid4().hex,
    }


async def run(
    gql: GraphQLClient, operation: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    """As GraphiQL sends it: the whole document and the operation's name."""
    response = await gql.http.post(
        "/graphql",
        json={"query": EXAMPLES, "operationName": operation, "variables": variables},
        headers={"authorization": f"Bearer {token}"} if token else {},
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def test_the_examples_run_on_the_demo_business(
    gql: GraphQLClient, server: Server, variables: dict[str, Any]
) -> None:
    availability = (await run(gql, "Availability", variables))["availability"]
    assert availability["timeZone"] == "Europe/Berlin"
    slots = [slot for day in availability["days"] for slot in day["slots"]]
    assert slots, "the demo clinic has free slots in the next 7 days"

    async with socket(server.base_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        request = {"query": EXAMPLES, "operationName": "SlotsLive", "variables": variables}
        await ws.send({"type": "subscribe", "id": "1", "payload": request})
        pushed = await ws.data()
    assert "errors" not in pushed, pushed
    assert pushed["data"]["availabilityChanged"]["days"]

    booked = await run(gql, "BookAsGuest", {**variables, "slot": slots[0]["start"]})
    payload = booked["createBooking"]
    assert payload["errors"] == []
    assert payload["booking"]["start"] == slots[0]["start"]
    assert payload["manageToken"]

    signed_in = (await run(gql, "SignIn", variables))["signIn"]
    assert signed_in["errors"] == []
    assert signed_in["accessToken"]
    assert signed_in["user"]["email"] == OWNER_EMAIL

    feed = await run(gql, "CalendarFeed", variables, signed_in["accessToken"])
    assert feed["rotateCalendarFeed"]["url"].endswith(".ics")
    reminders = feed["updateNotificationPreferences"]["user"]["notificationPreferences"]
    assert reminders == {"emailReminders": True, "smsReminders": True}


async def test_the_paying_examples_book_pay_and_push_the_confirmation(
    gql: GraphQLClient, server: Server, variables: dict[str, Any]
) -> None:
    paid = await paid_service(gql)
    offer = await run(gql, "Availability", {**variables, "serviceId": variables["paidServiceId"]})
    slots = [slot for day in offer["availability"]["days"] for slot in day["slots"]]
    assert slots, "the demo clinic's paid service has free slots in the next 7 days"

    made = await run(gql, "BookPaid", {**variables, "paidSlot": slots[0]["start"]})
    payload = made["createBooking"]
    assert payload["errors"] == []
    booking = payload["booking"]
    assert booking["status"] == "PENDING_PAYMENT"
    assert booking["expiresAt"]
    payment = booking["payment"]
    assert (payment["status"], payment["provider"]) == ("REQUIRES_PAYMENT", "offline")
    assert payment["amount"] == paid["price"]
    assert payment["clientSecret"]

    # What the page fills in for $bookingId and $manageToken: the answer above's.
    last = {**variables, "bookingId": booking["id"], "manageToken": payload["manageToken"]}
    async with socket(server.base_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        request = {"query": EXAMPLES, "operationName": "BookingLive", "variables": last}
        await ws.send({"type": "subscribe", "id": "1", "payload": request})
        first = await ws.data()
        assert "errors" not in first, first
        assert first["data"]["bookingChanged"]["status"] == "PENDING_PAYMENT"

        answer = (await run(gql, "PayInTestMode", last))["confirmPayment"]
        assert answer["errors"] == []
        assert answer["booking"]["status"] == "CONFIRMED"
        assert answer["booking"]["payment"]["status"] == "SUCCEEDED"
        for _ in range(3):  # a push for an earlier change may still come first
            pushed = (await ws.data())["data"]["bookingChanged"]
            if pushed["status"] != "PENDING_PAYMENT":
                break
    assert pushed["reference"] == booking["reference"]
    assert (pushed["status"], pushed["payment"]["status"]) == ("CONFIRMED", "SUCCEEDED")
