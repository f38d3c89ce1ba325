"""The `availability` query over HTTP, and the SQL it costs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from graphql import GraphQLError

from tests.business import create_business, payload
from tests.conftest import GraphQLClient, Server
from tests.test_catalog import ADD_TIME_OFF, SET_OVERRIDE
from web.graphql_endpoint import format_error

AVAILABILITY = """
query($service: ID!, $start: DateTime!, $end: DateTime!, $staff: ID, $tz: String) {
  availability(serviceId: $service, start: $start, end: $end, staffId: $staff, timeZone: $tz) {
    service { id }
    timeZone
    slots { start end remainingCapacity staff { id name } }
    days { date slots { start } }
  }
}"""

BERLIN = ZoneInfo("Europe/Berlin")


def next_weekday(weekday: int, weeks_ahead: int = 1) -> date:
    """A date well in the future (past any minimum notice) on `weekday` (0 = Monday)."""
    today = datetime.now(UTC).date() + timedelta(weeks=weeks_ahead)
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def local(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).isoformat()


def utc(day: date, hour: int, minute: int = 0) -> str:
    instant = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def ask(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(AVAILABILITY, variables))["availability"]
    return result


async def test_slots_follow_hours_overrides_and_time_off(gql: GraphQLClient) -> None:
    biz = await create_business(
        gql,
        staff_count=2,
        hours=[("09:00", "12:00"), ("13:00", "15:00")],
        service={"durationMinutes": 60, "slotIntervalMinutes": 30, "bufferAfterMinutes": 15},
    )
    monday = next_weekday(0)
    first, second = biz.staff_ids
    # First staff member: only 10:00-12:00 that Monday; second: off 13:00-14:00.
    await payload(
        gql,
        SET_OVERRIDE,
        {
            "staffId": first,
            "date": monday.isoformat(),
            "intervals": [{"start": "10:00", "end": "12:00"}],
        },
        biz.owner.token,
        "setDateOverride",
    )
    await payload(
        gql,
        ADD_TIME_OFF,
        {
            "organizationId": biz.org_id,
            "staffId": second,
            "start": local(monday, 13),
            "end": local(monday, 14),
        },
        biz.owner.token,
        "addTimeOff",
    )
    result = await ask(
        gql,
        service=biz.service_id,
        start=local(monday, 0),
        end=local(monday + timedelta(days=1), 0),
    )
    offered = {s["start"]: sorted(p["id"] for p in s["staff"]) for s in result["slots"]}
    both = sorted([first, second])
    assert offered == {
        utc(monday, 9): [second],
        utc(monday, 9, 30): [second],
        utc(monday, 10): both,
        utc(monday, 10, 30): both,
        utc(monday, 11): both,
        # 13:00 and 13:30 collide with the time off; 14:00 ends at 15:00 (buffer after
        # the slot only matters against other claims, not the end of the working day).
        utc(monday, 14): [second],
    }
    assert result["timeZone"] == "Europe/Berlin"
    assert [d["date"] for d in result["days"]] == [monday.isoformat()]
    slot = result["slots"][2]
    assert slot["remainingCapacity"] == 2
    assert slot["end"] == utc(monday, 11)


async def test_org_holiday_and_empty_days_and_time_zone_grouping(gql: GraphQLClient) -> None:
    biz = await create_business(gql, hours=[("09:00", "10:00")])
    monday = next_weekday(0)
    await payload(
        gql,
        ADD_TIME_OFF,
        {
            "organizationId": biz.org_id,
            "start": local(monday + timedelta(days=1), 0),
            "end": local(monday + timedelta(days=2), 0),
            "reason": "holiday",
        },
        biz.owner.token,
        "addTimeOff",
    )
    result = await ask(
        gql,
        service=biz.service_id,
        start=local(monday, 0),
        end=local(monday + timedelta(days=7), 0),
    )
    days = {d["date"]: len(d["slots"]) for d in result["days"]}
    assert len(days) == 7  # the weekend and the holiday are listed, empty
    assert days[(monday + timedelta(days=1)).isoformat()] == 0  # holiday
    assert days[monday.isoformat()] == 2
    assert days[(monday + timedelta(days=5)).isoformat()] == 0  # Saturday
    # Grouped in Tokyo's zone, 09:00 Berlin is 17:00 the same day: still 5 working days,
    # but the window's local dates in Tokyo span 8 dates.
    tokyo = await ask(
        gql,
        service=biz.service_id,
        start=local(monday, 0),
        end=local(monday + timedelta(days=7), 0),
        tz="Asia/Tokyo",
    )
    assert tokyo["timeZone"] == "Asia/Tokyo"
    assert len(tokyo["days"]) == 8
    assert sum(len(d["slots"]) for d in tokyo["days"]) == 8


async def test_staff_filter_and_min_notice(gql: GraphQLClient) -> None:
    biz = await create_business(
        gql,
        staff_count=2,
        weekdays=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
        hours=[("00:00", "23:30")],
        service={"minNoticeMinutes": 120, "maxAdvanceDays": 2},
    )
    now = datetime.now(UTC)
    result = await ask(
        gql,
        service=biz.service_id,
        start=now.isoformat(),
        end=(now + timedelta(days=5)).isoformat(),
        staff=biz.staff_ids[1],
    )
    starts = [datetime.fromisoformat(s["start"]) for s in result["slots"]]
    assert starts
    assert min(starts) >= now + timedelta(minutes=120)
    assert max(starts) <= now + timedelta(days=2)
    assert {p["id"] for s in result["slots"] for p in s["staff"]} == {biz.staff_ids[1]}


async def test_invalid_windows_are_top_level_invalid_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    monday = next_weekday(0)
    cases = [
        {"start": local(monday, 0), "end": local(monday + timedelta(days=63), 0)},
        {"start": local(monday, 10), "end": local(monday, 9)},
        {"start": local(monday, 0), "end": local(monday, 12), "tz": "Not/AZone"},
        {"start": "2027-01-01T00:00:00", "end": local(monday, 12)},
    ]
    for variables in cases:
        body = await gql.raw(AVAILABILITY, {"service": biz.service_id, **variables})
        assert body["data"] is None, variables
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT", variables
    # 62 days exactly is allowed.
    await ask(
        gql,
        service=biz.service_id,
        start=local(monday, 0),
        end=(datetime.fromisoformat(local(monday, 0)) + timedelta(days=62)).isoformat(),
    )
    unknown = await gql.raw(
        AVAILABILITY,
        {"service": biz.staff_ids[0], "start": local(monday, 0), "end": local(monday, 12)},
    )
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_two_spellings_of_one_instant_are_one_input(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    monday = next_weekday(0)
    a = await ask(gql, service=biz.service_id, start=local(monday, 0), end=local(monday, 12))
    b = await ask(
        gql,
        service=biz.service_id,
        start=utc(monday, 0).replace("Z", "+00:00"),
        end=utc(monday, 12),
    )
    assert a == b
    assert a["slots"][0]["start"].endswith(":00Z")


async def test_availability_costs_the_same_sql_for_1_and_20_staff(
    gql: GraphQLClient, server: Server
) -> None:
    counts = []
    for staff_count in (1, 20):
        biz = await create_business(gql, staff_count=staff_count)
        monday = next_weekday(0)
        await gql.data(
            AVAILABILITY,
            {
                "service": biz.service_id,
                "start": local(monday, 0),
                "end": local(monday + timedelta(days=1), 0),
            },
        )
        server.counter.start()
        result = await ask(
            gql,
            service=biz.service_id,
            start=local(monday, 0),
            end=local(monday + timedelta(days=31), 0),
        )
        counts.append(server.counter.stop())
        assert len(result["slots"][0]["staff"]) == staff_count
    # service, organization, the staff calendars (one statement), claims.
    assert counts == [4, 4], server.counter.statements


async def test_graphql_over_http_media_types(gql: GraphQLClient) -> None:
    modern = {"accept": "application/graphql-response+json, application/json;q=0.9"}
    ok = await gql.http.post("/graphql", json={"query": "{ __typename }"}, headers=modern)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/graphql-response+json")
    assert ok.json() == {"data": {"__typename": "Query"}}
    bad = await gql.http.post("/graphql", json={"query": "{ nope }"}, headers=modern)
    assert bad.status_code == 400
    assert "data" not in bad.json()
    assert bad.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    legacy = await gql.http.post("/graphql", json={"query": "{ nope }"})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    by_get = await gql.http.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"}
    )
    assert by_get.json() == {"data": {"__typename": "Query"}}
    mutation_by_get = await gql.http.get(
        "/graphql",
        params={"query": 'mutation { signOut(refreshToken: "x") { ok } }'},
        headers={"accept": "application/json"},
    )
    assert mutation_by_get.status_code >= 400


def test_faults_are_masked() -> None:
    """Anything we did not raise on purpose reaches the client without its details."""
    fault = GraphQLError(
        "connection to 10.0.0.5 refused",
        path=["availability"],
        original_error=OSError("connection to 10.0.0.5 refused"),
    )
    assert format_error(fault) == {
        "message": "Internal server error.",
        "path": ["availability"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }
    on_purpose = GraphQLError(
        "wrapped", original_error=GraphQLError("No.", extensions={"code": "FORBIDDEN"})
    )
    assert format_error(on_purpose)["extensions"] == {"code": "FORBIDDEN"}
