"""Errors told as they are: the client's mistakes are client errors with a code and a
clear message (and an INFO line in our log), our faults are INTERNAL_SERVER_ERROR with
a request id (and an ERROR with its traceback)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from graphql import GraphQLError

from domain.users import service as users
from tests.booking_api import create
from tests.business import create_business
from tests.conftest import GraphQLClient, Server
from tests.test_availability_api import local, next_weekday
from web.graphql_endpoint import format_error

GRAPHQL_RESPONSE = "application/graphql-response+json"
PAGE = "query($first: Int) { myBookings(first: $first) { edges { cursor } } }"
GUEST = {"name": "Ann Guest", "email": "ann@example.com"}


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        # A required input field missing inside the variables.
        (
            "mutation($input: CreateBookingInput!) {"
            " createBooking(input: $input) { manageToken } }",
            {"input": {"start": "2030-01-01T09:00:00Z"}},
            "to include required field 'serviceId'",
        ),
        # A variable of the wrong type.
        (PAGE, {"first": "ten"}, "Int cannot represent non-integer value: 'ten'"),
        # A required variable missing, and one null where it is required.
        (
            "query($id: ID!) { service(id: $id) { name } }",
            {},
            "Expected a value of non-null type 'ID!' to be provided.",
        ),
        (
            "query($id: ID!) { service(id: $id) { name } }",
            {"id": None},
            "Expected value of non-null type 'ID!' not to be None.",
        ),
    ],
)
async def test_variables_that_do_not_fit_are_bad_user_input(
    server: Server, query: str, variables: dict[str, Any], message: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        plain = await http.post("/graphql", json={"query": query, "variables": variables})
        modern = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"accept": GRAPHQL_RESPONSE},
        )
    assert plain.status_code == 200, plain.text
    assert modern.status_code == 400, modern.text
    for body in (plain.json(), modern.json()):
        assert "data" not in body, body  # refused before execution
        assert set(codes(body)) == {"BAD_USER_INPUT"}, body
        assert any(message in e["message"] for e in body["errors"]), body


@pytest.mark.parametrize("body", [b'"hello"', b"null", b"42", b"true", b"not json"])
async def test_a_body_that_is_not_a_json_object_is_400_and_the_connection_stays(
    server: Server, body: bytes
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert "JSON" in response.text, response.text
        # The same keep-alive connection answers the next request.
        after = await http.post("/graphql", json={"query": "{ __typename }"})
    assert after.status_code == 200
    assert after.json() == {"data": {"__typename": "Query"}}


async def test_parse_and_validation_failures_have_their_own_codes(gql: GraphQLClient) -> None:
    assert codes(await gql.raw("{ __typename")) == ["GRAPHQL_PARSE_FAILED"]
    assert codes(await gql.raw("{ nothingHere }")) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_client_mistakes_are_one_info_line_and_faults_an_error_with_request_id(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="booking.graphql")
    unknown = await gql.raw(
        "query($s: ID!) { availability(serviceId: $s, start: "
        '"2030-01-01T00:00:00Z", end: "2030-01-02T00:00:00Z") { timeZone } }',
        {"s": "U2VydmljZTpub3BlCg=="},
    )
    assert codes(unknown) == ["NOT_FOUND"]
    await gql.raw("{ __typename")
    mistakes = [r for r in caplog.records if r.name == "booking.graphql"]
    assert [r.levelno for r in mistakes] == [logging.INFO, logging.INFO], mistakes
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in mistakes)
    caplog.clear()

    async def broken(*args: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(users, "organizations_by_slug", broken)
    response = await gql.http.post(
        "/graphql",
        json={"query": '{ organization(slug: "any") { name } }'},
        headers={"x-request-id": "req-42"},
    )
    [error] = response.json()["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "fire" not in response.text
    [fault] = [r for r in caplog.records if r.name == "booking.graphql"]
    assert fault.levelno == logging.ERROR
    assert fault.exc_info is not None
    assert "req-42" in fault.getMessage()


async def test_a_start_off_the_grid_says_it_was_never_offered(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    monday = next_weekday(0)
    off_grid = await create(gql, serviceId=biz.service_id, start=local(monday, 9, 7), guest=GUEST)
    [error] = off_grid["errors"]
    assert error["code"] == "SLOT_UNAVAILABLE"
    assert error["message"] == "This time is not offered; pick one of the listed slots."
    # A slot that was offered and is now taken still says so.
    first = await create(gql, serviceId=biz.service_id, start=local(monday, 9), guest=GUEST)
    assert first["errors"] == []
    taken = await create(gql, serviceId=biz.service_id, start=local(monday, 9), guest=GUEST)
    assert taken["errors"][0]["message"] == "This time is no longer available."


def test_the_database_away_is_service_unavailable_not_a_fault() -> None:
    outage = GraphQLError(
        "connect call failed",
        path=["organization"],
        original_error=ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    )
    assert format_error(outage) == {
        "message": "The service is briefly unavailable; try again in a moment.",
        "path": ["organization"],
        "extensions": {"code": "SERVICE_UNAVAILABLE"},
    }


async def test_a_client_gone_before_its_body_arrived_is_no_fault(
    server: Server, gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up in the middle of sending its request (a closed tab, a
    load generator stopping) leaves nobody to answer: not an error with a traceback."""
    caplog.set_level(logging.WARNING)
    port = int(server.base_url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"query": "{ __typename'
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.3)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await gql.data("{ __typename }") == {"__typename": "Query"}
