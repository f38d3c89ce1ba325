"""Creating, holding, replaying, cancelling, moving and confirming bookings."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from infra.ids import key_of
from tests.booking_api import (
    CANCEL,
    CONFIRM,
    DECLINE,
    HOLD,
    READ,
    RESCHEDULE,
    create,
    key,
)
from tests.business import create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import codes
from tests.test_availability_api import AVAILABILITY, local, next_weekday


async def offered(gql: GraphQLClient, service: str, day: datetime) -> dict[str, int]:
    data = await gql.data(
        AVAILABILITY,
        {
            "service": service,
            "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(),
        },
    )
    return {s["start"]: s["remainingCapacity"] for s in data["availability"]["slots"]}


def monday_at(hour: int, minute: int = 0) -> str:
    return local(next_weekday(0), hour, minute)


def utc_z(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_customer_books_and_the_slot_is_gone(gql: GraphQLClient) -> None:
    biz = await create_business(gql, service={"priceAmount": 4500})
    customer = await sign_up(gql)
    start = monday_at(10)
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    assert (await offered(gql, biz.service_id, day))[utc_z(start)] == 1
    result = await create(
        gql,
        customer.token,
        serviceId=biz.service_id,
        start=start,
        staffId=biz.staff_ids[0],
        notes="first visit",
    )
    assert result["errors"] == []
    booking = result["booking"]
    # Paid: the slot is the customer's while they pay (tests/test_payments.py goes on).
    assert booking["status"] == "PENDING_PAYMENT"
    assert booking["expiresAt"] is not None
    assert booking["start"] == utc_z(start)
    assert booking["customer"] == {"id": customer.user_id}
    assert booking["price"] == {"amount": 4500, "currency": "EUR"}
    assert len(booking["reference"]) == 8
    assert result["manageToken"] is None
    history = [(h["status"], h["actor"]) for h in booking["history"]]
    assert history == [("PENDING_PAYMENT", "customer")]
    assert utc_z(start) not in await offered(gql, biz.service_id, day)
    other = await sign_up(gql)
    taken = await create(
        gql, other.token, serviceId=biz.service_id, start=start, staffId=biz.staff_ids[0]
    )
    assert codes(taken) == [("SLOT_UNAVAILABLE", "input.start")]
    assert taken["booking"] is None


async def test_guest_books_with_a_manage_token(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    missing = await create(gql, None, serviceId=biz.service_id, start=monday_at(9))
    assert codes(missing) == [("INVALID_INPUT", "input.guest")]
    guest = {"name": "Gus Guest", "email": "Gus@Example.com"}
    result = await create(gql, None, serviceId=biz.service_id, start=monday_at(9), guest=guest)
    assert result["errors"] == []
    token = result["manageToken"]
    assert token
    assert len(token) >= 22
    booking = result["booking"]
    assert booking["guestEmail"] == "gus@example.com"
    assert booking["customer"] is None
    assert (await gql.data(READ, {"id": booking["id"]}))["booking"] is None
    assert (await gql.data(READ, {"id": booking["id"], "token": "wrong"}))["booking"] is None
    seen = await gql.data(READ, {"id": booking["id"], "token": token})
    assert seen["booking"]["reference"] == booking["reference"]
    cancelled = (
        await gql.data(
            CANCEL, {"input": {"bookingId": booking["id"], "manageToken": token, "reason": "sick"}}
        )
    )["cancelBooking"]
    assert cancelled["booking"]["status"] == "CANCELLED"
    assert cancelled["booking"]["cancellationReason"] == "sick"
    assert [h["actor"] for h in cancelled["booking"]["history"]] == ["guest", "guest"]


async def test_idempotent_replay_and_key_reuse(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    same = key()
    first = await create(
        gql,
        customer.token,
        idempotencyKey=same,
        serviceId=biz.service_id,
        start=monday_at(11),
        staffId=biz.staff_ids[0],
    )
    # The same instant spelled in UTC is the same input.
    replay = await create(
        gql,
        customer.token,
        idempotencyKey=same,
        serviceId=biz.service_id,
        start=utc_z(monday_at(11)),
        staffId=biz.staff_ids[0],
    )
    assert replay["errors"] == []
    assert replay["booking"]["id"] == first["booking"]["id"]
    reused = await create(
        gql,
        customer.token,
        idempotencyKey=same,
        serviceId=biz.service_id,
        start=monday_at(12),
        staffId=biz.staff_ids[0],
    )
    assert codes(reused) == [("IDEMPOTENCY_KEY_REUSED", "input.idempotencyKey")]
    # A replay after a cancel answers the booking as it is now.
    await gql.data(CANCEL, {"input": {"bookingId": first["booking"]["id"]}}, customer.token)
    again = await create(
        gql,
        customer.token,
        idempotencyKey=same,
        serviceId=biz.service_id,
        start=monday_at(11),
        staffId=biz.staff_ids[0],
    )
    assert again["booking"]["status"] == "CANCELLED"


async def test_holds_block_others_and_convert(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    alice, bob = await sign_up(gql), await sign_up(gql)
    held = (
        await gql.data(
            HOLD, {"input": {"serviceId": biz.service_id, "start": monday_at(14)}}, alice.token
        )
    )["holdSlot"]
    assert held["errors"] == []
    hold = held["hold"]
    assert hold["staff"]["id"] == biz.staff_ids[0]
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    assert utc_z(monday_at(14)) not in await offered(gql, biz.service_id, day)
    blocked = await create(gql, bob.token, serviceId=biz.service_id, start=monday_at(14))
    assert codes(blocked) == [("SLOT_UNAVAILABLE", "input.start")]
    stolen = await create(
        gql, bob.token, serviceId=biz.service_id, start=monday_at(14), holdId=hold["id"]
    )
    assert codes(stolen) == [("FORBIDDEN", "input.holdId")]
    mine = await create(
        gql, alice.token, serviceId=biz.service_id, start=monday_at(14), holdId=hold["id"]
    )
    assert mine["errors"] == []
    assert mine["booking"]["status"] == "CONFIRMED"
    twice = await create(
        gql, alice.token, serviceId=biz.service_id, start=monday_at(14), holdId=hold["id"]
    )
    assert codes(twice) == [("HOLD_EXPIRED", "input.holdId")]


async def test_expired_hold_blocks_nothing(gql: GraphQLClient, server: Server) -> None:
    biz = await create_business(gql)
    alice, bob = await sign_up(gql), await sign_up(gql)
    before = server.app_state.policy
    server.app_state.policy = replace(server.app_state.policy, hold_seconds=1)
    try:
        held = await gql.data(
            HOLD, {"input": {"serviceId": biz.service_id, "start": monday_at(15)}}, alice.token
        )
    finally:
        server.app_state.policy = before
    hold = held["holdSlot"]["hold"]
    await asyncio.sleep(1.2)
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    assert utc_z(monday_at(15)) in await offered(gql, biz.service_id, day)
    late = await create(
        gql, alice.token, serviceId=biz.service_id, start=monday_at(15), holdId=hold["id"]
    )
    assert codes(late) == [("HOLD_EXPIRED", "input.holdId")]
    taken = await create(gql, bob.token, serviceId=biz.service_id, start=monday_at(15))
    assert taken["errors"] == []


async def test_reschedule_keeps_id_and_frees_the_old_slot(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    made = await create(gql, customer.token, serviceId=biz.service_id, start=monday_at(9))
    booking = made["booking"]
    # Moving by half its length overlaps its own old time: that must not block it.
    moved = (
        await gql.data(
            RESCHEDULE,
            {
                "input": {
                    "bookingId": booking["id"],
                    "start": monday_at(9, 30),
                    "idempotencyKey": "m1",
                }
            },
            customer.token,
        )
    )["rescheduleBooking"]
    assert moved["errors"] == []
    assert moved["booking"]["id"] == booking["id"]
    assert moved["booking"]["reference"] == booking["reference"]
    assert moved["booking"]["start"] == utc_z(monday_at(9, 30))
    assert [h["reason"] for h in moved["booking"]["history"]] == [None, "rescheduled"]
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    slots = await offered(gql, biz.service_id, day)
    assert utc_z(monday_at(9)) in slots
    assert utc_z(monday_at(9, 30)) not in slots
    replay = (
        await gql.data(
            RESCHEDULE,
            {
                "input": {
                    "bookingId": booking["id"],
                    "start": monday_at(9, 30),
                    "idempotencyKey": "m1",
                }
            },
            customer.token,
        )
    )["rescheduleBooking"]
    assert replay["errors"] == []
    assert len(replay["booking"]["history"]) == 2
    stranger = await sign_up(gql)
    refused = (
        await gql.data(
            RESCHEDULE,
            {"input": {"bookingId": booking["id"], "start": monday_at(11), "idempotencyKey": "x"}},
            stranger.token,
        )
    )["rescheduleBooking"]
    assert codes(refused) == [("NOT_FOUND", "input.bookingId")]


async def test_confirmation_flow(gql: GraphQLClient) -> None:
    biz = await create_business(gql, service={"requiresConfirmation": True})
    customer = await sign_up(gql)
    booking = (await create(gql, customer.token, serviceId=biz.service_id, start=monday_at(10)))[
        "booking"
    ]
    assert booking["status"] == "PENDING_CONFIRMATION"
    by_customer = await gql.data(CONFIRM, {"id": booking["id"]}, customer.token)
    assert codes(by_customer["confirmBooking"]) == [("FORBIDDEN", None)]
    confirmed = await gql.data(CONFIRM, {"id": booking["id"]}, biz.owner.token)
    assert confirmed["confirmBooking"]["booking"]["status"] == "CONFIRMED"
    again = await gql.data(DECLINE, {"id": booking["id"]}, biz.owner.token)
    assert codes(again["declineBooking"]) == [("NOT_CANCELLABLE", None)]
    second = (await create(gql, customer.token, serviceId=biz.service_id, start=monday_at(11)))[
        "booking"
    ]
    declined = (
        await gql.data(DECLINE, {"id": second["id"], "reason": "fully booked"}, biz.owner.token)
    )["declineBooking"]["booking"]
    assert declined["status"] == "DECLINED"
    assert [h["actor"] for h in declined["history"]] == ["customer", "admin"]
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    assert utc_z(monday_at(11)) in await offered(gql, biz.service_id, day)


async def test_group_class_takes_capacity_seats(gql: GraphQLClient) -> None:
    biz = await create_business(gql, service={"capacity": 3, "durationMinutes": 60})
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    start = monday_at(10)
    for seats_left in (3, 2, 1):
        assert (await offered(gql, biz.service_id, day))[utc_z(start)] == seats_left
        person = await sign_up(gql)
        assert (await create(gql, person.token, serviceId=biz.service_id, start=start))[
            "errors"
        ] == []
    assert utc_z(start) not in await offered(gql, biz.service_id, day)
    late = await sign_up(gql)
    full = await create(gql, late.token, serviceId=biz.service_id, start=start)
    assert codes(full) == [("SLOT_UNAVAILABLE", "input.start")]
    # The overlapping start half an hour later belongs to another session: refused too.
    overlap = await create(gql, late.token, serviceId=biz.service_id, start=monday_at(10, 30))
    assert codes(overlap) == [("SLOT_UNAVAILABLE", "input.start")]


async def test_outside_booking_window(gql: GraphQLClient) -> None:
    biz = await create_business(
        gql,
        service={"maxAdvanceDays": 3},
        weekdays=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
    )
    customer = await sign_up(gql)
    far = await create(gql, customer.token, serviceId=biz.service_id, start=monday_at(10))
    assert codes(far) == [("OUTSIDE_BOOKING_WINDOW", "input.start")]


async def test_any_staff_goes_to_the_least_busy(gql: GraphQLClient) -> None:
    biz = await create_business(gql, staff_count=3)
    by_key = sorted(biz.staff_ids, key=lambda g: key_of(g, "Staff") or uuid.UUID(int=0))
    chosen = []
    for hour in (9, 10, 11, 12):
        person = await sign_up(gql)
        made = await create(gql, person.token, serviceId=biz.service_id, start=monday_at(hour))
        chosen.append(made["booking"]["staff"]["id"])
    # Fewest bookings that day first, ties broken by id: a stable round robin.
    assert chosen == [*by_key, by_key[0]]
