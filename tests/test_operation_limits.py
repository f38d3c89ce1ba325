"""Limits before execution: depth, aliases, tokens, directives and cost, over HTTP and
WebSocket, refused with QUERY_TOO_COMPLEX before anything runs."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from schema.operation_limits import Documents, Limits
from schema.root import schema
from tests.business import create_business
from tests.conftest import GraphQLClient, Server
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, socket

LIMITS = Limits()  # the defaults, which the test server runs with


def nested(levels: int, first: str = "") -> str:
    """organization > services > edges > node > organization > ...: exponential."""
    inner = "name"
    for _ in range(levels):
        inner = f"services{first} {{ edges {{ node {{ name organization {{ {inner} }} }} }} }}"
    return f'{{ organization(slug: "demo-clinic") {{ {inner} }} }}'


async def refused(gql: GraphQLClient, query: str, limit: str, name: str | None = None) -> str:
    started = time.perf_counter()
    response = await gql.http.post("/graphql", json={"query": query, "operationName": name})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert "data" not in body, body  # nothing executed
    assert {e["extensions"]["code"] for e in body["errors"]} == {"QUERY_TOO_COMPLEX"}, body
    [error] = [e for e in body["errors"] if e["extensions"]["limit"] == limit]
    assert elapsed < 0.5, elapsed  # refused before any work, not after
    message: str = error["message"]
    return message


async def test_a_thirty_level_query_is_refused_in_milliseconds(gql: GraphQLClient) -> None:
    message = await refused(gql, nested(8, "(first: 1)"), "depth")
    assert "34 deep" in message
    assert f"limit is {LIMITS.depth}" in message


def the_issues_query(slug: str, rounds: int = 30) -> str:
    """Issue 8's abusive query as sent: `organization { services { edges { node {
    organization { services ...` for 30 rounds, 122 fields deep, default page sizes."""
    inner = "name"
    for _ in range(rounds):
        inner = f"services {{ edges {{ node {{ organization {{ {inner} }} }} }} }}"
    return f'{{ organization(slug: "{slug}") {{ {inner} }} }}'


async def test_the_issues_thirty_round_query_never_starts(
    server: Server, gql: GraphQLClient
) -> None:
    """Before the limits it held the whole pool for minutes; now it is refused in
    milliseconds and not one statement runs (the business exists, so running it would
    read it)."""
    biz = await create_business(gql)
    query = the_issues_query(biz.slug)
    assert query.count("organization") == 31
    assert query.count("services") == 30
    server.counter.start()
    try:
        message = await refused(gql, query, "depth")  # under 0.5 s, no `data`
    finally:
        statements = server.counter.stop()
    assert statements == 0, server.counter.statements[:3]
    assert "122 deep" in message, message


async def test_cost_multiplies_by_page_sizes(gql: GraphQLClient) -> None:
    # Three rounds at the default page of 50 are 50**3 organizations: refused...
    message = await refused(gql, nested(3), "cost")
    assert "512,753" in message
    assert "100,000" in message
    # ...while the same shape at `first: 2` is cheap and runs.
    data = await gql.data(nested(3, "(first: 2)"))
    assert "organization" in data


async def test_cost_reads_first_from_variables(gql: GraphQLClient) -> None:
    query = """query($n: Int) { organization(slug: "demo-clinic") {
      services(first: $n) { edges { node { organization {
        services(first: $n) { edges { node { organization {
          services(first: $n) { edges { node { name } } } } } } } } } } } } }"""
    small = await gql.raw(query, {"n": 3})
    assert "errors" not in small, small
    big = await gql.raw(query, {"n": 100})
    assert big["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", big


async def test_an_availability_window_costs_by_its_days(gql: GraphQLClient) -> None:
    def windows(count: int, days: int) -> str:
        end = f"2030-01-{1 + days:02d}T00:00:00Z" if days < 31 else "2030-03-04T00:00:00Z"
        return " ".join(
            f'w{i}: availability(serviceId: "x", start: "2030-01-01T00:00:00Z", end: "{end}")'
            " { slots { start end staff { id name } } }"
            for i in range(count)
        )

    await refused(gql, f"{{ {windows(7, 62)} }}", "cost")
    # The same fields over one day each, four times as many: measured, then run.
    short = await gql.raw(f"{{ {windows(28, 1)} }}")
    assert {e["extensions"]["code"] for e in short["errors"]} == {"NOT_FOUND"}, short


async def test_aliases_and_directives_are_counted(gql: GraphQLClient) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(LIMITS.aliases + 1))
    assert "31 aliases" in await refused(gql, f"{{ {aliases} }}", "aliases")
    directives = " ".join(
        "... on Query @include(if: true) { __typename }" for _ in range(LIMITS.directives + 1)
    )
    assert "51 directives" in await refused(gql, f"{{ {directives} }}", "directives")


async def test_tokens_are_counted_while_parsing(gql: GraphQLClient) -> None:
    padded = "{ " + "__typename " * LIMITS.tokens + "}"
    assert "more than 2,000 tokens" in await refused(gql, padded, "tokens")


async def test_naming_an_operation_schema_or_using_fragments_dodges_nothing(
    gql: GraphQLClient,
) -> None:
    """GHSA-224p-v68g-5g8f: a depth limit skipped operations named like introspection."""
    deep = nested(8, "(first: 1)")
    await refused(gql, "query __schema " + deep, "depth", "__schema")
    await refused(gql, "query IntrospectionQuery " + deep, "depth", "IntrospectionQuery")
    # The same nesting spread over fragments, and an alias named `__schema`.
    fragments = """
    query { organization(slug: "demo-clinic") { ...A } }
    fragment A on Organization { services(first: 1) { edges { node { organization { ...B } } } } }
    fragment B on Organization { services(first: 1) { edges { node { organization { ...C } } } } }
    fragment C on Organization { services(first: 1) { edges { node { organization { ...D } } } } }
    fragment D on Organization { services(first: 1) { edges { node { organization { ...E } } } } }
    fragment E on Organization { __schema: name }
    """
    await refused(gql, fragments, "depth")


async def test_fragments_spread_many_times_cost_the_walk_nothing(gql: GraphQLClient) -> None:
    """Each fragment spreads the next twice: 2**20 fields if expanded, cheap to measure."""
    parts = ["query { ...F0 }"]
    for i in range(20):
        parts.append(f"fragment F{i} on Query {{ a{i}: __typename ...F{i + 1} ...F{i + 1} }}")
    parts.append("fragment F20 on Query { __typename }")
    message = await refused(gql, "\n".join(parts), "aliases")
    assert "1,048,575 aliases" in message


async def test_graphiql_introspection_fits_with_room_to_grow() -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    documents = Documents(schema._schema, LIMITS)
    prepared = documents.prepare(query, None, None)
    assert not isinstance(prepared, list), prepared
    # Introspection grows with the schema: fail here long before GraphiQL breaks.
    figures = next(iter(documents.kept[query].figures.values()))
    assert figures.cost < LIMITS.cost / 2, figures
    assert figures.depth < LIMITS.depth, figures


async def test_graphiql_introspection_runs(gql: GraphQLClient) -> None:
    data = await gql.data(get_introspection_query(descriptions=True))
    assert data["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_the_same_limits_hold_over_websocket(server: Server, protocol: str) -> None:
    deep = """subscription __schema($s: ID!, $a: DateTime!, $b: DateTime!) {
      availabilityChanged(serviceId: $s, start: $a, end: $b) {
        service { organization { services(first: 1) { edges { node { organization {
          services(first: 1) { edges { node { organization {
            services(first: 1) { edges { node { organization { name
          } } } } } } } } } } } } } } } }"""
    window = {"s": "x", "a": "2030-01-01T00:00:00Z", "b": "2030-01-02T00:00:00Z"}
    aliases = " ".join(f"a{i}: __typename" for i in range(LIMITS.aliases + 1))
    directives = " ".join("... on Query @include(if: true) { __typename }" for _ in range(51))
    cases = [
        (deep, window, "depth"),
        (nested(8, "(first: 1)"), {}, "depth"),
        (nested(3), {}, "cost"),
        (f"{{ {aliases} }}", {}, "aliases"),
        (f"{{ {directives} }}", {}, "directives"),
        ("{ " + "__typename " * LIMITS.tokens + "}", {}, "tokens"),
    ]
    async with socket(server.base_url, protocol) as ws:
        await ws.init()
        for query, variables, limit in cases:
            subscription_id = await ws.subscribe(query, variables)
            message = await ws.next()
            assert message["type"] == "error", message
            assert message["id"] == subscription_id
            payload: Any = message["payload"]
            errors = [payload] if protocol == LEGACY_WS else payload
            assert {e["extensions"]["code"] for e in errors} == {"QUERY_TOO_COMPLEX"}, errors
            assert limit in {e["extensions"]["limit"] for e in errors}, errors


async def test_organizations_by_slug_cost_one_statement(server: Server, gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    aliases = " ".join(f'o{i}: organization(slug: "{biz.slug}") {{ name }}' for i in range(25))
    server.counter.start()
    data = await gql.data(f"{{ {aliases} }}")
    assert server.counter.stop() == 1, server.counter.statements
    assert {o["name"] for o in data.values()} == {"Test Business"}


async def test_graphql_response_media_type_answers_400_for_refusals(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/graphql",
            json={"query": nested(8, "(first: 1)")},
            headers={"accept": "application/graphql-response+json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
