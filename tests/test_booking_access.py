"""Who may see which booking, lists and their pagination, and what they cost in SQL."""

from __future__ import annotations

from typing import Any

from tests.booking_api import CANCEL, READ, create
from tests.business import ADD_STAFF, SET_WEEK, create_business, payload, sign_up
from tests.conftest import GraphQLClient, Server
from tests.test_booking import monday_at

NODE = "query($id: ID!) { node(id: $id) { __typename id ... on Booking { reference } } }"

ORG_BOOKINGS = """
query($slug: String!, $first: Int, $after: String, $start: DateTime, $end: DateTime,
      $status: [BookingStatus!]) {
  organization(slug: $slug) {
    bookings(first: $first, after: $after, start: $start, end: $end, status: $status) {
      edges { cursor node { id start status staff { id } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""

MY_BOOKINGS = """
query($first: Int, $after: String, $status: [BookingStatus!]) {
  myBookings(first: $first, after: $after, status: $status) {
    edges { cursor node { id start status service { id name } staff { id name }
      customer { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_each_role_sees_exactly_what_it_may(gql: GraphQLClient, unique: str) -> None:
    biz = await create_business(gql, staff_count=2)
    # The first staff member has an account (verified): they see their own bookings.
    staff_person = await sign_up(gql, email=f"staff-{unique}@example.com", verified=True)
    linked = await payload(
        gql,
        ADD_STAFF,
        {
            "organizationId": biz.org_id,
            "name": "Linked",
            "email": staff_person.email,
            "serviceIds": [biz.service_id],
        },
        biz.owner.token,
        "addStaff",
    )
    linked_id = linked["staff"]["id"]
    await payload(
        gql,
        SET_WEEK,
        {"staffId": linked_id, "hours": [{"weekday": "MONDAY", "start": "09:00", "end": "17:00"}]},
        biz.owner.token,
        "setWeeklySchedule",
    )
    customer, stranger = await sign_up(gql), await sign_up(gql)
    mine = (
        await create(
            gql, customer.token, serviceId=biz.service_id, start=monday_at(9), staffId=linked_id
        )
    )["booking"]
    other = (
        await create(
            gql,
            customer.token,
            serviceId=biz.service_id,
            start=monday_at(9),
            staffId=biz.staff_ids[0],
        )
    )["booking"]
    guest = await create(
        gql,
        None,
        serviceId=biz.service_id,
        start=monday_at(10),
        staffId=linked_id,
        guest={"name": "G", "email": "g@example.com"},
    )

    async def sees(token: str | None, booking_id: str, manage: str | None = None) -> bool:
        by_field = (await gql.data(READ, {"id": booking_id, "token": manage}, token))["booking"]
        by_node = (await gql.data(NODE, {"id": booking_id}, token))["node"]
        if manage is None:
            assert (by_field is None) == (by_node is None)
        return by_field is not None

    assert await sees(customer.token, mine["id"])
    assert await sees(biz.owner.token, mine["id"])
    assert await sees(staff_person.token, mine["id"])
    assert not await sees(staff_person.token, other["id"])  # another staff member's
    assert not await sees(stranger.token, mine["id"])
    assert not await sees(None, mine["id"])
    assert await sees(None, guest["booking"]["id"], guest["manageToken"])
    assert not await sees(stranger.token, guest["booking"]["id"], "not-the-token")

    body = await gql.raw(ORG_BOOKINGS, {"slug": biz.slug}, stranger.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await gql.raw(ORG_BOOKINGS, {"slug": biz.slug})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    all_ids = {
        e["node"]["id"]
        for e in (await gql.data(ORG_BOOKINGS, {"slug": biz.slug}, biz.owner.token))[
            "organization"
        ]["bookings"]["edges"]
    }
    assert all_ids == {mine["id"], other["id"], guest["booking"]["id"]}
    own = await gql.data(ORG_BOOKINGS, {"slug": biz.slug}, staff_person.token)
    assert {e["node"]["staff"]["id"] for e in own["organization"]["bookings"]["edges"]} == {
        linked_id
    }
    # Strangers cannot cancel, and are told nothing about the booking.
    refused = await gql.data(CANCEL, {"input": {"bookingId": mine["id"]}}, stranger.token)
    assert refused["cancelBooking"]["errors"][0]["code"] == "NOT_FOUND"
    # STAFF may not cancel (the contract gives that to the customer, guest and admins).
    by_staff = await gql.data(CANCEL, {"input": {"bookingId": mine["id"]}}, staff_person.token)
    assert by_staff["cancelBooking"]["errors"][0]["code"] == "FORBIDDEN"
    by_admin = await gql.data(CANCEL, {"input": {"bookingId": mine["id"]}}, biz.owner.token)
    assert by_admin["cancelBooking"]["booking"]["history"][-1]["actor"] == "admin"


async def test_lists_filter_and_page_by_start(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    made = []
    for hour in (13, 9, 11, 10, 12):
        result = await create(gql, customer.token, serviceId=biz.service_id, start=monday_at(hour))
        made.append(result["booking"])
    await gql.data(CANCEL, {"input": {"bookingId": made[2]["id"]}}, customer.token)  # 11:00
    by_start = sorted(made, key=lambda b: b["start"])
    pages: list[str] = []
    after = None
    while True:
        data = await gql.data(MY_BOOKINGS, {"first": 2, "after": after}, customer.token)
        conn = data["myBookings"]
        pages.extend(e["node"]["id"] for e in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == [b["id"] for b in by_start]
    active = await gql.data(MY_BOOKINGS, {"status": ["CONFIRMED"]}, customer.token)
    assert len(active["myBookings"]["edges"]) == 4
    window = await gql.data(
        ORG_BOOKINGS,
        {
            "slug": biz.slug,
            "start": monday_at(10),
            "end": monday_at(12),
            "status": ["CONFIRMED", "CANCELLED"],
        },
        biz.owner.token,
    )
    starts = [e["node"]["start"] for e in window["organization"]["bookings"]["edges"]]
    assert starts == [by_start[1]["start"], by_start[2]["start"]]
    over = await gql.raw(MY_BOOKINGS, {"first": 101}, customer.token)
    assert over["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    bad_cursor = await gql.raw(MY_BOOKINGS, {"after": "nonsense"}, customer.token)
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_my_bookings_costs_constant_sql(gql: GraphQLClient, server: Server) -> None:
    counts: list[int] = []
    for bookings in (1, 12):
        biz = await create_business(gql, staff_count=3)
        customer = await sign_up(gql)
        for i in range(bookings):
            result: dict[str, Any] = await create(
                gql,
                customer.token,
                serviceId=biz.service_id,
                start=monday_at(9 + i // 3),
                staffId=biz.staff_ids[i % 3],
            )
            assert result["errors"] == [], result
        server.counter.start()
        data = await gql.data(MY_BOOKINGS, {"first": 100}, customer.token)
        counts.append(server.counter.stop())
        assert len(data["myBookings"]["edges"]) == bookings
    # The page, then one batch each: services, staff, customers.
    assert counts == [4, 4], server.counter.statements
