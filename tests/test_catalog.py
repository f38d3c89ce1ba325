"""A business sets itself up over GraphQL; strangers may not touch it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.business import (
    ADD_STAFF,
    CREATE_ORG,
    CREATE_SERVICE,
    SET_WEEK,
    create_business,
    payload,
    sign_up,
    verify_email,
)
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import codes

SET_OVERRIDE = """
mutation($input: SetDateOverrideInput!) {
  setDateOverride(input: $input) {
    staff { id dateOverrides(start: "2027-01-01", end: "2027-12-31") {
      date intervals { start end } } }
    errors { code field message }
  }
}"""

ADD_TIME_OFF = """
mutation($input: AddTimeOffInput!) {
  addTimeOff(input: $input) {
    timeOff { id start end reason staff { id } }
    errors { code field message }
  }
}"""


async def test_business_set_up_and_read_back(gql: GraphQLClient) -> None:
    biz = await create_business(gql, staff_count=2, service={"priceAmount": 2500})
    query = """query($slug: String!) { organization(slug: $slug) {
        id name slug timeZone currency
        services { edges { cursor node { id name price { amount currency }
          staff { id name } organization { slug } } } pageInfo { hasNextPage } }
        staff(first: 1) { edges { node { id name timeZone services { id }
          weeklySchedule { weekday start end } } } pageInfo { hasNextPage endCursor } }
    } }"""
    org = (await gql.data(query, {"slug": biz.slug}))["organization"]
    assert org["id"] == biz.org_id
    assert org["timeZone"] == "Europe/Berlin"
    service = org["services"]["edges"][0]["node"]
    assert service["price"] == {"amount": 2500, "currency": "EUR"}
    assert [s["id"] for s in service["staff"]] == biz.staff_ids
    assert service["organization"]["slug"] == biz.slug
    first = org["staff"]["edges"][0]["node"]
    assert first["id"] == biz.staff_ids[0]
    assert first["timeZone"] == "Europe/Berlin"  # defaults to the organization's
    assert first["services"] == [{"id": biz.service_id}]
    assert first["weeklySchedule"][0] == {"weekday": "MONDAY", "start": "09:00", "end": "17:00"}
    assert org["staff"]["pageInfo"]["hasNextPage"] is True
    rest = """query($slug: String!, $after: String) { organization(slug: $slug) {
        staff(first: 5, after: $after) { edges { node { id } }
          pageInfo { hasNextPage hasPreviousPage } } } }"""
    page = await gql.data(rest, {"slug": biz.slug, "after": org["staff"]["pageInfo"]["endCursor"]})
    staff = page["organization"]["staff"]
    assert [e["node"]["id"] for e in staff["edges"]] == biz.staff_ids[1:]
    assert staff["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}


async def test_creator_is_owner(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    data = await gql.data(
        "{ viewer { memberships { role organization { id } } } }", token=biz.owner.token
    )
    assert data["viewer"]["memberships"] == [{"role": "OWNER", "organization": {"id": biz.org_id}}]


async def test_node_answers_every_type(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    off = await payload(
        gql,
        ADD_TIME_OFF,
        {
            "organizationId": biz.org_id,
            "staffId": biz.staff_ids[0],
            "start": "2027-02-01T10:00:00+01:00",
            "end": "2027-02-01T12:00:00+01:00",
            "reason": "dentist",
        },
        biz.owner.token,
        "addTimeOff",
    )
    query = "query($id: ID!) { node(id: $id) { __typename id } }"
    for node_id, type_name in (
        (biz.org_id, "Organization"),
        (biz.service_id, "Service"),
        (biz.staff_ids[0], "Staff"),
        (off["timeOff"]["id"], "TimeOff"),
        (biz.owner.user_id, "User"),
    ):
        node = (await gql.data(query, {"id": node_id}, biz.owner.token))["node"]
        assert node == {"__typename": type_name, "id": node_id}
    # Unknown ids, and ids of one type passed where another is expected, are null.
    assert (await gql.data(query, {"id": "bm9wZQ"}))["node"] is None
    assert (await gql.data(query, {"id": "garbage!"}))["node"] is None
    assert (
        await gql.data("query($id: ID!) { service(id: $id) { id } }", {"id": biz.staff_ids[0]})
    )["service"] is None
    # A stranger cannot read someone's time off or user by id.
    stranger = await sign_up(gql)
    assert (await gql.data(query, {"id": off["timeOff"]["id"]}, stranger.token))["node"] is None
    assert (await gql.data(query, {"id": biz.owner.user_id}, stranger.token))["node"] is None


async def test_time_off_and_overrides(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    result = await payload(
        gql,
        SET_OVERRIDE,
        {
            "staffId": biz.staff_ids[0],
            "date": "2027-03-05",
            "intervals": [{"start": "14:00", "end": "18:00"}, {"start": "08:00", "end": "10:30"}],
        },
        biz.owner.token,
        "setDateOverride",
    )
    assert result["staff"]["dateOverrides"] == [
        {
            "date": "2027-03-05",
            "intervals": [{"start": "08:00", "end": "10:30"}, {"start": "14:00", "end": "18:00"}],
        }
    ]
    closed = await payload(
        gql,
        SET_OVERRIDE,
        {"staffId": biz.staff_ids[0], "date": "2027-03-06", "intervals": []},
        biz.owner.token,
        "setDateOverride",
    )
    assert {"date": "2027-03-06", "intervals": []} in closed["staff"]["dateOverrides"]
    holiday = await payload(
        gql,
        ADD_TIME_OFF,
        {
            "organizationId": biz.org_id,
            "start": "2027-12-25T00:00:00+01:00",
            "end": "2027-12-26T00:00:00+01:00",
            "reason": "Christmas",
        },
        biz.owner.token,
        "addTimeOff",
    )
    assert holiday["timeOff"]["staff"] is None
    assert holiday["timeOff"]["start"] == "2027-12-24T23:00:00Z"
    query = """query($id: ID!) { node(id: $id) { ... on Staff {
        timeOff(start: "2027-12-01T00:00:00Z", end: "2028-01-01T00:00:00Z") { reason } } } }"""
    seen = await gql.data(query, {"id": biz.staff_ids[0]}, biz.owner.token)
    assert seen["node"]["timeOff"] == [{"reason": "Christmas"}]
    stranger = await sign_up(gql)
    hidden = await gql.raw(query, {"id": biz.staff_ids[0]}, stranger.token)
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"durationMinutes": 0}, [("INVALID_INPUT", "input.durationMinutes")]),
        ({"durationMinutes": -15}, [("INVALID_INPUT", "input.durationMinutes")]),
        ({"bufferBeforeMinutes": -1}, [("INVALID_INPUT", "input.bufferBeforeMinutes")]),
        ({"bufferAfterMinutes": -5}, [("INVALID_INPUT", "input.bufferAfterMinutes")]),
        ({"capacity": 0}, [("INVALID_INPUT", "input.capacity")]),
        ({"slotIntervalMinutes": 0}, [("INVALID_INPUT", "input.slotIntervalMinutes")]),
        ({"priceAmount": -100}, [("INVALID_INPUT", "input.priceAmount")]),
        ({"name": "  "}, [("INVALID_INPUT", "input.name")]),
        (
            {"staffIds": ["U3RhZmY6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"]},
            [("INVALID_INPUT", "input.staffIds.0")],
        ),
    ],
)
async def test_create_service_invalid_input(
    gql: GraphQLClient, change: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    biz = await create_business(gql, staff_count=0)
    data = await gql.data(
        CREATE_SERVICE,
        {"input": {"organizationId": biz.org_id, "name": "X", "durationMinutes": 30, **change}},
        biz.owner.token,
    )
    assert data["createService"]["service"] is None
    assert codes(data["createService"]) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": "Bad Slug"}, "input.slug"),
        ({"slug": "-leading"}, "input.slug"),
        ({"timeZone": "Mars/Olympus"}, "input.timeZone"),
        ({"timeZone": "CEST+1"}, "input.timeZone"),
        ({"currency": "EURO"}, "input.currency"),
        ({"currency": "eur"}, "input.currency"),
        ({"currency": "XYZ"}, "input.currency"),
    ],
)
async def test_create_organization_invalid_input(
    gql: GraphQLClient, change: dict[str, Any], field: str, unique: str
) -> None:
    owner = await sign_up(gql)
    data = await gql.data(
        CREATE_ORG,
        {
            "input": {
                "name": "X",
                "slug": f"ok-{unique}",
                "timeZone": "Europe/Berlin",
                "currency": "EUR",
                **change,
            }
        },
        owner.token,
    )
    assert data["createOrganization"]["organization"] is None
    assert codes(data["createOrganization"]) == [("INVALID_INPUT", field)]


async def test_slug_taken(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    data = await gql.data(
        CREATE_ORG,
        {"input": {"name": "X", "slug": biz.slug, "timeZone": "UTC", "currency": "USD"}},
        biz.owner.token,
    )
    assert codes(data["createOrganization"]) == [("SLUG_TAKEN", "input.slug")]


async def test_weekly_schedule_invalid_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    staff_id = biz.staff_ids[0]
    cases: list[tuple[list[dict[str, str]], list[tuple[str, str]]]] = [
        (
            [{"weekday": "MONDAY", "start": "12:00", "end": "09:00"}],
            [("INVALID_INPUT", "input.hours.0.end")],
        ),
        (
            [{"weekday": "MONDAY", "start": "09:00", "end": "09:00"}],
            [("INVALID_INPUT", "input.hours.0.end")],
        ),
        (
            [
                {"weekday": "MONDAY", "start": "09:00", "end": "13:00"},
                {"weekday": "TUESDAY", "start": "09:00", "end": "13:00"},
                {"weekday": "MONDAY", "start": "12:00", "end": "17:00"},
            ],
            [("INVALID_INPUT", "input.hours.2.start")],
        ),
    ]
    for hours, expected in cases:
        data = await gql.data(
            SET_WEEK, {"input": {"staffId": staff_id, "hours": hours}}, biz.owner.token
        )
        assert codes(data["setWeeklySchedule"]) == expected, hours
    # Touching intervals are fine (a lunch break of zero minutes), and nothing above stuck.
    ok = await payload(
        gql,
        SET_WEEK,
        {
            "staffId": staff_id,
            "hours": [
                {"weekday": "MONDAY", "start": "09:00", "end": "12:00"},
                {"weekday": "MONDAY", "start": "12:00", "end": "15:00"},
            ],
        },
        biz.owner.token,
        "setWeeklySchedule",
    )
    assert len(ok["staff"]["weeklySchedule"]) == 2


async def test_override_and_time_off_invalid_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    data = await gql.data(
        SET_OVERRIDE,
        {
            "input": {
                "staffId": biz.staff_ids[0],
                "date": "2027-03-05",
                "intervals": [
                    {"start": "08:00", "end": "12:00"},
                    {"start": "11:00", "end": "13:00"},
                ],
            }
        },
        biz.owner.token,
    )
    assert codes(data["setDateOverride"]) == [("INVALID_INPUT", "input.intervals.1.start")]
    data = await gql.data(
        ADD_TIME_OFF,
        {
            "input": {
                "organizationId": biz.org_id,
                "start": "2027-02-01T12:00:00Z",
                "end": "2027-02-01T10:00:00Z",
            }
        },
        biz.owner.token,
    )
    assert codes(data["addTimeOff"]) == [("INVALID_INPUT", "input.end")]


async def test_add_staff_invalid_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    data = await gql.data(
        ADD_STAFF,
        {
            "input": {
                "organizationId": biz.org_id,
                "name": "X",
                "timeZone": "Nowhere/City",
                "email": "nope",
            }
        },
        biz.owner.token,
    )
    assert sorted(codes(data["addStaff"])) == [
        ("INVALID_INPUT", "input.email"),
        ("INVALID_INPUT", "input.timeZone"),
    ]


async def test_naive_datetime_is_invalid_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    body = await gql.raw(
        ADD_TIME_OFF,
        {
            "input": {
                "organizationId": biz.org_id,
                "start": "2027-02-01T10:00:00",
                "end": "2027-02-01T12:00:00Z",
            }
        },
        biz.owner.token,
    )
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_strangers_and_staff_are_forbidden(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    stranger = await sign_up(gql)
    attempts: list[tuple[str, dict[str, Any], str]] = [
        (
            CREATE_SERVICE,
            {"organizationId": biz.org_id, "name": "X", "durationMinutes": 30},
            "createService",
        ),
        (ADD_STAFF, {"organizationId": biz.org_id, "name": "X"}, "addStaff"),
        (SET_WEEK, {"staffId": biz.staff_ids[0], "hours": []}, "setWeeklySchedule"),
        (
            SET_OVERRIDE,
            {"staffId": biz.staff_ids[0], "date": "2027-01-02", "intervals": []},
            "setDateOverride",
        ),
        (
            ADD_TIME_OFF,
            {
                "organizationId": biz.org_id,
                "start": "2027-02-01T10:00:00Z",
                "end": "2027-02-01T11:00:00Z",
            },
            "addTimeOff",
        ),
    ]
    for query, input, name in attempts:
        data = await gql.data(query, {"input": input}, stranger.token)
        assert codes(data[name]) == [("FORBIDDEN", None)], name
        anonymous = await gql.raw(query, {"input": input})
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", name
    # The owner's schedule is untouched by the refused attempt.
    query = "query($id: ID!) { node(id: $id) { ... on Staff { weeklySchedule { weekday } } } }"
    staff = (await gql.data(query, {"id": biz.staff_ids[0]}))["node"]
    assert len(staff["weeklySchedule"]) == 5


async def test_staff_by_email_gets_a_membership_now_or_once_verified(
    gql: GraphQLClient, unique: str
) -> None:
    """A verified account is linked at once; an address without one is linked when its
    owner signs up and verifies it (tests/test_email_verification.py: every order)."""
    biz = await create_business(gql)
    existing = await sign_up(gql, verified=True)
    later_email = f"later-{unique}@example.com"
    for email in (existing.email, later_email):
        await payload(
            gql,
            ADD_STAFF,
            {"organizationId": biz.org_id, "name": "Pat", "email": email},
            biz.owner.token,
            "addStaff",
        )
    memberships = "{ viewer { memberships { role organization { id } } } }"
    now = await gql.data(memberships, token=existing.token)
    assert now["viewer"]["memberships"] == [{"role": "STAFF", "organization": {"id": biz.org_id}}]
    later = await sign_up(gql, email=later_email.upper())
    unverified = await gql.data(memberships, token=later.token)
    assert unverified["viewer"]["memberships"] == []
    await verify_email(gql, later_email)
    then = await gql.data(memberships, token=later.token)
    assert then["viewer"]["memberships"] == [{"role": "STAFF", "organization": {"id": biz.org_id}}]
    # STAFF may not manage the organization.
    data = await gql.data(
        CREATE_SERVICE,
        {"input": {"organizationId": biz.org_id, "name": "X", "durationMinutes": 30}},
        later.token,
    )
    assert codes(data["createService"]) == [("FORBIDDEN", None)]


async def test_unknown_ids_in_mutations_are_not_found(gql: GraphQLClient) -> None:
    owner = await sign_up(gql)
    data = await gql.data(
        CREATE_SERVICE,
        {"input": {"organizationId": "bm9wZQ", "name": "X", "durationMinutes": 30}},
        owner.token,
    )
    assert codes(data["createService"]) == [("NOT_FOUND", "input.organizationId")]


async def test_first_over_100_is_invalid_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    body = await gql.raw(
        "query($s: String!) { organization(slug: $s) {"
        " services(first: 101) { edges { cursor } } } }",
        {"s": biz.slug},
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_staff_list_with_related_fields_costs_constant_sql(
    gql: GraphQLClient, server: Server
) -> None:
    query = """query($slug: String!) { organization(slug: $slug) {
      services { edges { node { price { amount } organization { id } staff { id } } } }
      staff { edges { node {
        organization { slug } services { id name } weeklySchedule { weekday }
        dateOverrides(start: "2027-01-01", end: "2027-01-31") { date }
        timeOff(start: "2027-01-01T00:00:00Z", end: "2027-02-01T00:00:00Z") { id staff { id } }
      } } } } }"""
    counts = []
    for staff_count in (1, 6):
        biz = await create_business(gql, staff_count=staff_count, service={"priceAmount": 100})
        server.counter.start()
        data = await gql.data(query, {"slug": biz.slug}, biz.owner.token)
        counts.append(server.counter.stop())
        assert len(data["organization"]["staff"]["edges"]) == staff_count
    # slug, services page, staff page, then one batch per loader: organizations,
    # staff of services, staff, services of staff, services, weekly hours, overrides,
    # memberships (time off is members-only), time off.
    assert counts == [11, 11], server.counter.statements


async def test_first_null_means_the_default(gql: GraphQLClient) -> None:
    biz = await create_business(gql, staff_count=2)
    data = await gql.data(
        "query($s: String!) { organization(slug: $s) { staff(first: null) { edges { cursor } } } }",
        {"s": biz.slug},
    )
    assert len(data["organization"]["staff"]["edges"]) == 2


async def test_schedules_set_at_once_end_as_one_of_them(gql: GraphQLClient) -> None:
    """Two managers saving a staff member's week (or one day) at the same moment: each
    save wins or is replaced, never a fault (both deleted the old rows, then both
    inserted: the no-overlap constraint refused the second, answered as a 500)."""
    biz = await create_business(gql)
    staff_id = biz.staff_ids[0]
    weeks = [
        [{"weekday": "MONDAY", "start": f"{hour:02d}:00", "end": f"{hour + 4:02d}:00"}]
        for hour in range(6, 14)
    ]
    answers = await asyncio.gather(
        *(
            gql.data(SET_WEEK, {"input": {"staffId": staff_id, "hours": week}}, biz.owner.token)
            for week in weeks
        )
    )
    assert [a["setWeeklySchedule"]["errors"] for a in answers] == [[]] * len(weeks)
    read = """query($id: ID!) { node(id: $id) { ... on Staff {
        weeklySchedule { weekday start end } dateOverrides(start: "2027-03-05",
        end: "2027-03-05") { intervals { start end } } } } }"""
    saved = (await gql.data(read, {"id": staff_id}, biz.owner.token))["node"]
    assert saved["weeklySchedule"] in weeks  # one save whole, not a mix
    days = [
        {
            "staffId": staff_id,
            "date": "2027-03-05",
            "intervals": [{"start": f"{h:02d}:00", "end": f"{h + 3:02d}:00"}],
        }
        for h in range(6, 14)
    ]
    answers = await asyncio.gather(
        *(gql.data(SET_OVERRIDE, {"input": day}, biz.owner.token) for day in days)
    )
    assert [a["setDateOverride"]["errors"] for a in answers] == [[]] * len(days)
    saved = (await gql.data(read, {"id": staff_id}, biz.owner.token))["node"]
    assert [o["intervals"] for o in saved["dateOverrides"]] in [[d["intervals"]] for d in days]
