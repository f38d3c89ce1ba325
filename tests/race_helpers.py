"""Racing requests over HTTP and checking the outcome in PostgreSQL, past the app."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from infra.ids import key_of
from tests.conftest import GraphQLClient

ACTIVE = ["PENDING_PAYMENT", "PENDING_CONFIRMATION", "CONFIRMED"]

Request = tuple[str, dict[str, Any], str]  # query, variables, access token


@dataclass
class Answer:
    status: int
    text: str
    body: dict[str, Any]


async def send(gql: GraphQLClient, query: str, variables: dict[str, Any], token: str) -> Answer:
    """One GraphQL request, whatever comes back (no assertions)."""
    response = await gql.http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    )
    try:
        body = response.json()
    except ValueError:
        body = {}
    return Answer(response.status_code, response.text, body if isinstance(body, dict) else {})


async def race(clients: list[GraphQLClient], requests: list[Request]) -> list[Answer]:
    """Sends every request at once, request i to process i mod n."""
    # Open the connections first, so that the requests themselves leave together.
    per_client = -(-len(requests) // len(clients))
    await asyncio.gather(*(gql.http.get("/healthz") for gql in clients for _ in range(per_client)))
    return list(
        await asyncio.gather(
            *(
                send(clients[i % len(clients)], query, variables, token)
                for i, (query, variables, token) in enumerate(requests)
            )
        )
    )


def payloads(answers: list[Answer], field: str) -> list[dict[str, Any]]:
    """The mutation's payloads, once no answer is a fault: no HTTP 5xx (nor any status
    but 200), no top-level GraphQL errors."""
    assert [a.text for a in answers if a.status >= 500] == []
    assert [(a.status, a.text) for a in answers if a.status != 200] == []
    assert [a.body["errors"] for a in answers if "errors" in a.body] == []
    return [a.body["data"][field] for a in answers]


def codes(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


def as_utc(value: str) -> str:
    """The API's spelling of an instant: UTC, whole seconds, Z."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def db_key(global_id: str, type_name: str) -> uuid.UUID:
    found = key_of(global_id, type_name)
    assert found is not None, global_id
    return found


async def fetch(database_url: str, query: str, *args: Any) -> list[Any]:
    """Plain SQL against the test database."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def booked(database_url: str, staff_id: str, start: str) -> tuple[list[Any], list[Any]]:
    """(active bookings, claims) of the staff member at exactly `start`."""
    staff = db_key(staff_id, "Staff")
    when = datetime.fromisoformat(start)
    bookings = await fetch(
        database_url,
        "SELECT id FROM bookings WHERE staff_id = $1 AND start_at = $2"
        " AND status = ANY($3::text[])",
        staff,
        when,
        ACTIVE,
    )
    claims = await fetch(
        database_url,
        "SELECT booking_id, hold_id FROM claims WHERE resource_id = $1 AND start_at = $2",
        staff,
        when,
    )
    return bookings, claims
