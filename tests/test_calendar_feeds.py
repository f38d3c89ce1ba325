"""Calendar feeds: rotateCalendarFeed hands out a secret .ics URL; the feed, fetched over
real HTTP from the test server and parsed back with icalendar, lists exactly its owner's
bookings as the e-mailed invites' events (same UID, SEQUENCE from the history), keeps a
cancelled one as STATUS:CANCELLED, answers 304 to a matching If-None-Match, and stops
working once rotated again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from icalendar import Calendar, Component
from pydantic import ValidationError

from domain.notifications import invites
from infra.settings import Settings
from tests.booking_api import CANCEL, create
from tests.business import Business, Person, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import db_key
from tests.test_booking import monday_at, utc_z

ROTATE = """
mutation($staffId: ID) {
  rotateCalendarFeed(staffId: $staffId) { url errors { code field message } }
}"""


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client: the feed is fetched by its absolute URL, as a calendar app does."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def rotate(
    gql: GraphQLClient, person: Person | None, staff_id: str | None = None
) -> dict[str, Any]:
    data = await gql.data(ROTATE, {"staffId": staff_id}, person.token if person else None)
    payload: dict[str, Any] = data["rotateCalendarFeed"]
    return payload


async def feed_url(gql: GraphQLClient, person: Person, staff_id: str | None = None) -> str:
    payload = await rotate(gql, person, staff_id)
    assert payload["errors"] == [], payload
    url: str = payload["url"]
    return url


async def book(gql: GraphQLClient, biz: Business, person: Person, hour: int, staff: int = 0) -> str:
    made = await create(
        gql,
        person.token,
        serviceId=biz.service_id,
        start=monday_at(hour),
        staffId=biz.staff_ids[staff],
    )
    assert made["errors"] == [], made
    booking_id: str = made["booking"]["id"]
    return booking_id


def events(body: bytes) -> dict[str, Component]:
    """The feed's VEVENTs by UID."""
    calendar = Calendar.from_ical(body)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def uid(booking_id: str) -> str:
    return invites.uid_of(db_key(booking_id, "Booking"))


async def test_a_customer_feed_lists_their_bookings_and_nobody_elses(
    gql: GraphQLClient, http: httpx.AsyncClient, server: Server
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql, name="Carla Customer")
    other = await sign_up(gql, name="Otto Other")
    mine = await book(gql, biz, customer, 9)
    theirs = await book(gql, biz, other, 10)

    url = await feed_url(gql, customer)
    assert url.startswith(f"{server.base_url}/calendar/"), url
    assert url.endswith(".ics"), url
    response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["cache-control"] == "private, max-age=300"
    assert "last-modified" in response.headers

    calendar = Calendar.from_ical(response.content)
    assert "Carla Customer" in str(calendar["X-WR-CALNAME"])
    assert b"\r\nX-PUBLISHED-TTL:PT1H\r\n" in response.content
    assert "METHOD" not in calendar, "a published feed, not an iTIP message"
    found = events(response.content)
    assert set(found) == {uid(mine)}, "only the viewer's own booking"
    assert uid(theirs) not in found
    event = found[uid(mine)]
    assert str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("SEQUENCE") == 0  # as the first invite of the booking says
    assert str(event["SUMMARY"]) == "Appointment"
    start = event.decoded("DTSTART")
    assert start.strftime("%Y-%m-%dT%H:%M:%SZ") == utc_z(monday_at(9))
    assert start.utcoffset().total_seconds() == 0  # times go out in UTC
    assert b"Otto" not in response.content


async def test_rotating_again_retires_the_old_url(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    customer = await sign_up(gql)
    first = await feed_url(gql, customer)
    assert (await http.get(first)).status_code == 200
    second = await feed_url(gql, customer)
    assert second != first
    gone = await http.get(first)
    assert gone.status_code == 404
    assert (await http.get(second)).status_code == 200
    # An unknown token and a malformed one answer exactly as a rotated one does.
    base = first.rsplit("/", 1)[0]
    for unknown in (f"{base}/{'A' * 43}.ics", f"{base}/nonsense.ics"):
        answer = await http.get(unknown)
        assert (answer.status_code, answer.text) == (404, gone.text)


async def test_a_staff_feed_for_its_staff_member_and_managers_only(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    biz = await create_business(gql, staff_count=2)
    customer = await sign_up(gql, name="Carla Customer")
    other = await sign_up(gql, name="Otto Other")
    first = await book(gql, biz, customer, 9)
    second = await book(gql, biz, other, 10)
    elsewhere = await book(gql, biz, customer, 11, staff=1)
    guest = await create(
        gql,
        None,
        serviceId=biz.service_id,
        start=monday_at(12),
        staffId=biz.staff_ids[0],
        guest={"name": "Grace Guest", "email": "grace@example.com"},
    )
    assert guest["errors"] == [], guest

    url = await feed_url(gql, biz.owner, biz.staff_ids[0])
    found = events((await http.get(url)).content)
    guest_uid = uid(guest["booking"]["id"])
    assert set(found) == {uid(first), uid(second), guest_uid}, "that staff member's only"
    assert uid(elsewhere) not in found
    assert str(found[uid(first)]["SUMMARY"]) == "Appointment: Carla Customer"
    assert str(found[guest_uid]["SUMMARY"]) == "Appointment: Grace Guest"

    # A customer, even one the staff member serves, may not; nor may another business.
    refused = await rotate(gql, customer, biz.staff_ids[0])
    assert refused["url"] is None
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    stranger = await create_business(gql)
    refused = await rotate(gql, stranger.owner, biz.staff_ids[0])
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    unknown = await rotate(gql, biz.owner, stranger.service_id)  # not a staff id
    assert [(e["code"], e["field"]) for e in unknown["errors"]] == [("NOT_FOUND", "staffId")]
    # The owner's feed still works: refusals changed nothing.
    assert (await http.get(url)).status_code == 200


async def test_anonymous_may_not_rotate(gql: GraphQLClient) -> None:
    body = await gql.raw(ROTATE, {"staffId": None})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_cancelled_booking_stays_as_cancelled_with_a_higher_sequence(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    kept = await book(gql, biz, customer, 9)
    cancelled = await book(gql, biz, customer, 10)
    url = await feed_url(gql, customer)
    before = await http.get(url)

    data = await gql.data(CANCEL, {"input": {"bookingId": cancelled}}, customer.token)
    assert data["cancelBooking"]["errors"] == [], data
    after = await http.get(url)
    found = events(after.content)
    assert str(found[uid(cancelled)]["STATUS"]) == "CANCELLED"
    assert found[uid(cancelled)].decoded("SEQUENCE") == 1
    assert str(found[uid(kept)]["STATUS"]) == "CONFIRMED"
    assert after.headers["etag"] != before.headers["etag"]


async def test_etag_and_if_none_match_answer_304(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    await book(gql, biz, customer, 9)
    url = await feed_url(gql, customer)
    first = await http.get(url)
    etag = first.headers["etag"]
    assert etag.startswith('"'), "a strong validator"
    again = await http.get(url)
    assert again.content == first.content, "the same bookings make the same bytes"
    assert again.headers["etag"] == etag

    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await http.get(url, headers={"if-none-match": sent})
        assert cached.status_code == 304, sent
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert cached.headers["cache-control"] == "private, max-age=300"
    changed = await http.get(url, headers={"if-none-match": '"something else"'})
    assert (changed.status_code, changed.content) == (200, first.content)

    head = await http.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == etag
    assert int(head.headers["content-length"]) == len(first.content)


async def test_public_api_url_is_the_feeds_base(gql: GraphQLClient, server: Server) -> None:
    person = await sign_up(gql)
    state = server.app_state
    settings = state.settings
    # Starlette's State is no plain object: monkeypatch would delete it on undo.
    state.settings = settings.model_copy(update={"public_api_url": "https://api.example.com/b"})
    try:
        url = await feed_url(gql, person)
    finally:
        state.settings = settings
    assert url.startswith("https://api.example.com/b/calendar/"), url


def test_public_api_url_must_be_an_http_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_API_URL", "https://api.example.com/booking/")
    assert Settings.from_env().public_api_url == "https://api.example.com/booking"
    for bad in ("ftp://api.example.com", "api.example.com", "https://api.example.com/?x=1"):
        monkeypatch.setenv("PUBLIC_API_URL", bad)
        with pytest.raises(ValidationError, match="PUBLIC_API_URL"):
            Settings.from_env()


async def test_a_feed_costs_the_same_few_statements_however_many_bookings(
    gql: GraphQLClient, http: httpx.AsyncClient, server: Server
) -> None:
    """Histories, services, organizations and customers are read in one batch each."""
    biz = await create_business(gql, staff_count=2)
    few, many = await sign_up(gql), await sign_up(gql)
    await book(gql, biz, few, 9)
    for hour in (10, 11, 12, 13, 14):
        await book(gql, biz, many, hour, staff=1)
    counts = []
    for person, staff in ((few, biz.staff_ids[0]), (many, biz.staff_ids[1])):
        for url in (await feed_url(gql, person), await feed_url(gql, biz.owner, staff)):
            server.counter.start()
            response = await http.get(url)
            counts.append(server.counter.stop())
            assert response.status_code == 200
    assert counts[0] == counts[2], counts  # customer feeds: 1 booking, then 5
    assert counts[1] == counts[3], counts  # staff feeds
    assert max(counts) <= 8, counts
