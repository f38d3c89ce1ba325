"""Booking e-mails end to end through the running server: derived from committed booking
changes by the outbox consumer "notifications", sent by the dispatcher (to MAIL_DIR's
.eml files here; tests/test_notifications_smtp.py takes the same path over SMTP), with
times in the recipient's zone and one calendar event per booking whose SEQUENCE rises.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from domain import events
from domain.notifications.tables import notification_deliveries
from infra.ids import from_global_id
from tests.booking_api import CANCEL, READ, RESCHEDULE, create
from tests.business import ADD_STAFF, create_business, payload, sign_up
from tests.conftest import GraphQLClient, Server
from tests.mailbox import messages_to
from tests.notification_helpers import arrived, event_of, invite_of, text_of
from tests.test_payments import (
    CONFIRM_PAYMENT,
    PRICE,
    book,
    paid_business,
    refundable_business,
)

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) { user { id timeZone } errors { code field message } }
}"""


def next_monday(weeks_ahead: int = 1) -> date:
    today = datetime.now(UTC).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 + 7 * weeks_ahead)


def at(day: date, hour: int, zone: ZoneInfo, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


async def test_a_berlin_customer_of_a_new_york_business_reads_berlin_time_and_one_invite(
    gql: GraphQLClient,
) -> None:
    biz = await create_business(gql, time_zone="America/New_York")
    customer = await sign_up(gql, name="Berta")
    changed = await gql.data(
        UPDATE_PROFILE, {"input": {"timeZone": "Europe/Berlin"}}, customer.token
    )
    assert changed["updateProfile"]["user"]["timeZone"] == "Europe/Berlin"
    day = next_monday()
    start = at(day, 10, NEW_YORK)
    made = await create(gql, customer.token, serviceId=biz.service_id, start=start.isoformat())
    assert made["errors"] == [], made
    booking_id = made["booking"]["id"]

    (confirmed,) = await arrived(customer.email, "Booking confirmed: Appointment at Test Business")
    body = text_of(confirmed)
    berlin_time = (
        f"{clock(start, BERLIN)}{chr(0x2013)}{clock(start + timedelta(minutes=30), BERLIN)}"
    )
    assert berlin_time in body, body
    assert "(Europe/Berlin)" in body, body
    assert "America/New_York" not in body
    first = event_of(invite_of(confirmed))
    assert first["method"] == "REQUEST"
    assert first["sequence"] == "0"
    assert first["status"] == "CONFIRMED"
    assert datetime.fromisoformat(first["start"]) == start

    moved_to = at(day, 11, NEW_YORK)
    moved = await gql.data(
        RESCHEDULE,
        {"input": {"bookingId": booking_id, "start": moved_to.isoformat(), "idempotencyKey": "r1"}},
        customer.token,
    )
    assert moved["rescheduleBooking"]["errors"] == []
    (rescheduled,) = await arrived(customer.email, "Booking moved")
    assert f"Previously: {day:%A} {day.day}" in text_of(rescheduled)
    assert clock(moved_to, BERLIN) in text_of(rescheduled)
    second = event_of(invite_of(rescheduled))
    assert second["uid"] == first["uid"]
    assert second["sequence"] == "1"
    assert datetime.fromisoformat(second["start"]) == moved_to

    cancelled = await gql.data(
        CANCEL, {"input": {"bookingId": booking_id, "reason": "ill"}}, customer.token
    )
    assert cancelled["cancelBooking"]["errors"] == []
    (cancel,) = await arrived(customer.email, "Booking cancelled")
    third = event_of(invite_of(cancel))
    assert third["method"] == "CANCEL"
    assert third["status"] == "CANCELLED"
    assert third["uid"] == first["uid"]
    assert third["sequence"] == "2"
    # Each change told once, however often the consumer saw it.
    await asyncio.sleep(0.3)
    subjects = [str(m["Subject"]).split(":")[0] for m in messages_to(customer.email)]
    assert subjects.count("Booking confirmed") == 1, subjects
    assert subjects.count("Booking moved") == 1, subjects


async def test_the_staff_member_hears_of_new_moved_and_cancelled_bookings_in_their_zone(
    gql: GraphQLClient,
) -> None:
    biz = await create_business(gql, staff_count=0, time_zone="Europe/Berlin")
    email = f"staff-{datetime.now(UTC).timestamp()}@example.com"
    added = await payload(
        gql,
        ADD_STAFF,
        {
            "organizationId": biz.org_id,
            "name": "Sam",
            "email": email,
            "timeZone": "America/New_York",
            "serviceIds": [biz.service_id],
        },
        biz.owner.token,
        "addStaff",
    )
    staff_id = added["staff"]["id"]
    await _week(gql, biz.owner.token, staff_id)
    customer = await sign_up(gql, name="Carl")
    start = at(next_monday(), 16, BERLIN)  # 10:00 in New York, where Sam works 08-18
    made = await create(gql, customer.token, serviceId=biz.service_id, start=start.isoformat())
    assert made["errors"] == [], made
    (new,) = await arrived(email, "New booking: Carl, Appointment")
    assert clock(start, NEW_YORK) in text_of(new)
    assert "(America/New_York)" in text_of(new)
    assert "manage" not in text_of(new).lower()  # a guest's link never goes to staff
    await gql.data(
        RESCHEDULE,
        {
            "input": {
                "bookingId": made["booking"]["id"],
                "start": (start + timedelta(hours=1)).isoformat(),
                "idempotencyKey": "s1",
            }
        },
        customer.token,
    )
    await arrived(email, "Booking moved: Carl, Appointment")
    await gql.data(CANCEL, {"input": {"bookingId": made["booking"]["id"]}}, customer.token)
    await arrived(email, "Booking cancelled: Carl, Appointment")


async def _week(gql: GraphQLClient, token: str, staff_id: str) -> None:
    from tests.business import SET_WEEK, WEEKDAYS

    week = [{"weekday": d, "start": "08:00", "end": "18:00"} for d in WEEKDAYS[:5]]
    await payload(gql, SET_WEEK, {"staffId": staff_id, "hours": week}, token, "setWeeklySchedule")


async def test_a_guests_messages_carry_their_manage_link_which_opens_the_booking(
    gql: GraphQLClient,
) -> None:
    biz = await create_business(gql)
    guest = f"guest-{datetime.now(UTC).timestamp()}@example.com"
    made = await create(
        gql,
        serviceId=biz.service_id,
        start=at(next_monday(), 14, BERLIN).isoformat(),
        guest={"name": "Gina", "email": guest},
    )
    assert made["errors"] == [], made
    (confirmed,) = await arrived(guest, "Booking confirmed")
    body = text_of(confirmed)
    link = re.search(r"https?://\S+/bookings/(\S+)#token=(\S+)", body)
    assert link is not None, body
    booking_id, token = link.group(1), link.group(2)
    assert booking_id == made["booking"]["id"]
    assert token == made["manageToken"]  # the one the answer showed, derived again
    read = await gql.data(READ, {"id": booking_id, "token": token})
    assert read["booking"]["guestEmail"] == guest
    assert "Hello Gina" in body


async def test_a_change_rolled_back_tells_nobody(gql: GraphQLClient, server: Server) -> None:
    """A cancellation written with its outbox event and history entry, then rolled back:
    the consumer never sees it, so no message goes out (a later committed change of the
    same booking proves the consumer has passed that point)."""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    made = await create(
        gql,
        customer.token,
        serviceId=biz.service_id,
        start=at(next_monday(), 11, BERLIN).isoformat(),
    )
    await arrived(customer.email, "Booking confirmed")
    decoded = from_global_id(made["booking"]["id"])
    org = from_global_id(biz.org_id)
    assert decoded is not None
    assert org is not None
    engine = server.app_state.engine
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(
            text("UPDATE bookings SET status = 'CANCELLED' WHERE id = :id"), {"id": decoded[1]}
        )
        await conn.execute(
            text(
                "INSERT INTO booking_changes (booking_id, status, start_at, end_at, actor)"
                " SELECT id, 'CANCELLED', start_at, end_at, 'customer' FROM bookings WHERE id = :id"
            ),
            {"id": decoded[1]},
        )
        await events.record(conn, events.BookingChanged(decoded[1], org[1]))
        await transaction.rollback()
    moved = await gql.data(
        RESCHEDULE,
        {
            "input": {
                "bookingId": made["booking"]["id"],
                "start": at(next_monday(), 12, BERLIN).isoformat(),
                "idempotencyKey": "after",
            }
        },
        customer.token,
    )
    assert moved["rescheduleBooking"]["errors"] == []
    await arrived(customer.email, "Booking moved")
    subjects = [str(m["Subject"]) for m in messages_to(customer.email)]
    assert not any(s.startswith("Booking cancelled") for s in subjects), subjects
    async with engine.connect() as conn:
        keys = (
            await conn.execute(
                select(notification_deliveries.c.dedupe_key).where(
                    notification_deliveries.c.dedupe_key.like(f"booking:{decoded[1]}:%")
                )
            )
        ).scalars()
        assert sorted(k.rsplit(":", 2)[-1] for k in keys) == [
            "booking_confirmed",
            "booking_rescheduled",
        ]


async def test_a_paid_booking_tells_its_deadline_its_receipt_and_its_refund(
    gql: GraphQLClient,
) -> None:
    biz = await refundable_business(gql)
    made = await book(gql, biz, None)
    booking, token = made["booking"], made["manageToken"]
    guest = booking["guestEmail"]
    (received,) = await arrived(guest, "Booking received")
    assert "Please complete the payment by" in text_of(received)
    assert event_of(invite_of(received))["status"] == "TENTATIVE"
    paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert paid["confirmPayment"]["errors"] == []
    price = f"{PRICE // 100}.{PRICE % 100:02d} EUR"
    (receipt,) = await arrived(guest, f"Payment receipt: {price}")
    assert "Appointment" in text_of(receipt)
    (confirmed,) = await arrived(guest, "Booking confirmed")
    assert event_of(invite_of(confirmed))["sequence"] == "1"
    cancel = {"input": {"bookingId": booking["id"], "manageToken": token}}
    assert (await gql.data(CANCEL, cancel))["cancelBooking"]["errors"] == []
    await arrived(guest, "Booking cancelled")
    (refund,) = await arrived(guest, f"Refund: {price}")
    assert "has refunded" in text_of(refund)


UNDELIVERED = """
query($slug: String!) { organization(slug: $slug) {
  undeliveredMessages { id recipient subject attempts lastError } } }"""
RETRY = """
mutation($id: ID!) { retryMessage(messageId: $id) {
  message { id recipient } errors { code field } } }"""


async def test_owners_see_what_could_not_be_delivered_and_send_it_again(
    gql: GraphQLClient, server: Server
) -> None:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    start = at(next_monday(), 15, BERLIN).isoformat()
    made = await create(gql, customer.token, serviceId=biz.service_id, start=start)
    await arrived(customer.email, "Booking confirmed")
    booking = from_global_id(made["booking"]["id"])
    assert booking is not None
    # As if the customer's mail server had refused it for good.
    async with server.app_state.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE notification_deliveries SET status = 'DEAD', sent_at = NULL,"
                " attempts = 12, last_error = 'MailRefused: 550 mailbox full'"
                " WHERE dedupe_key = :key"
            ),
            {"key": f"booking:{booking[1]}:0:booking_confirmed"},
        )
    listed = await gql.data(UNDELIVERED, {"slug": biz.slug}, biz.owner.token)
    (letter,) = listed["organization"]["undeliveredMessages"]
    assert letter["recipient"] == customer.email
    assert letter["subject"].startswith("Booking confirmed")
    assert letter["lastError"] == "MailRefused: 550 mailbox full"
    other = await create_business(gql)
    refused = await gql.data(RETRY, {"id": letter["id"]}, other.owner.token)
    assert [e["code"] for e in refused["retryMessage"]["errors"]] == ["FORBIDDEN"]
    hidden = await gql.raw(UNDELIVERED, {"slug": biz.slug}, customer.token)
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    retried = await gql.data(RETRY, {"id": letter["id"]}, biz.owner.token)
    assert retried["retryMessage"]["errors"] == []
    await arrived(customer.email, "Booking confirmed", count=2)
    again = await gql.data(UNDELIVERED, {"slug": biz.slug}, biz.owner.token)
    assert again["organization"]["undeliveredMessages"] == []


async def test_a_refund_weeks_after_the_payment_is_still_told(
    gql: GraphQLClient, server: Server
) -> None:
    biz = await refundable_business(gql)
    made = await book(gql, biz, None)
    booking, token = made["booking"], made["manageToken"]
    paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert paid["confirmPayment"]["errors"] == []
    guest = booking["guestEmail"]
    await arrived(guest, "Payment receipt")
    decoded = from_global_id(booking["id"])
    assert decoded is not None
    async with server.app_state.engine.begin() as conn:  # paid ten days ago
        await conn.execute(
            text("UPDATE payments SET state_at = now() - interval '10 days' WHERE booking_id = :b"),
            {"b": decoded[1]},
        )
    cancel = {"input": {"bookingId": booking["id"], "manageToken": token}}
    assert (await gql.data(CANCEL, cancel))["cancelBooking"]["errors"] == []
    await arrived(guest, "Refund: ")


async def test_a_guest_booking_made_with_another_key_gets_no_dead_link(
    gql: GraphQLClient, server: Server
) -> None:
    """A guest's token made before tokens were derived (or with an earlier key) does not
    match the derived one: their later messages carry no link rather than a broken one."""
    biz = await create_business(gql)
    guest = f"guest-{datetime.now(UTC).timestamp()}@example.com"
    made = await create(
        gql,
        serviceId=biz.service_id,
        start=at(next_monday(), 16, BERLIN).isoformat(),
        guest={"name": "Olga", "email": guest},
    )
    await arrived(guest, "Booking confirmed")
    decoded = from_global_id(made["booking"]["id"])
    assert decoded is not None
    async with server.app_state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE bookings SET manage_token_hash = sha256('older token') WHERE id = :b"),
            {"b": decoded[1]},
        )
    cancel = {"input": {"bookingId": made["booking"]["id"]}}
    assert (await gql.data(CANCEL, cancel, biz.owner.token))["cancelBooking"]["errors"] == []
    (cancelled,) = await arrived(guest, "Booking cancelled")
    assert "#token=" not in text_of(cancelled)
    assert "View or manage your booking" not in text_of(cancelled)


async def _staff_with_email(
    gql: GraphQLClient, biz: Any, name: str, service_id: str
) -> tuple[str, str]:
    email = f"{name.lower()}-{datetime.now(UTC).timestamp()}@example.com"
    added = await payload(
        gql,
        ADD_STAFF,
        {"organizationId": biz.org_id, "name": name, "email": email, "serviceIds": [service_id]},
        biz.owner.token,
        "addStaff",
    )
    staff_id = added["staff"]["id"]
    await _week(gql, biz.owner.token, staff_id)
    return staff_id, email


async def test_a_booking_handed_to_a_colleague_leaves_one_calendar_for_the_other(
    gql: GraphQLClient,
) -> None:
    biz = await create_business(gql, staff_count=0)
    ann, ann_email = await _staff_with_email(gql, biz, "Ann", biz.service_id)
    bob, bob_email = await _staff_with_email(gql, biz, "Bob", biz.service_id)
    customer = await sign_up(gql, name="Cleo")
    start = at(next_monday(), 10, BERLIN).isoformat()
    made = await create(gql, customer.token, serviceId=biz.service_id, start=start, staffId=ann)
    assert made["errors"] == [], made
    (new_for_ann,) = await arrived(ann_email, "New booking: Cleo")
    uid = event_of(invite_of(new_for_ann))["uid"]
    handed = {"bookingId": made["booking"]["id"], "start": start, "staffId": bob}
    moved = await gql.data(RESCHEDULE, {"input": handed | {"idempotencyKey": "h"}}, customer.token)
    assert moved["rescheduleBooking"]["errors"] == [], moved
    (gone,) = await arrived(ann_email, "Booking cancelled: Cleo")
    assert "moved to Bob" in text_of(gone)
    assert event_of(invite_of(gone))["method"] == "CANCEL"
    assert event_of(invite_of(gone))["uid"] == uid
    (new_for_bob,) = await arrived(bob_email, "New booking: Cleo")
    assert event_of(invite_of(new_for_bob))["sequence"] == "1"
    (told,) = await arrived(customer.email, "Booking moved")
    assert "with Bob" in text_of(told)
    assert "with Ann" in text_of(told)  # "Previously: ... with Ann"


async def test_a_request_the_staff_member_had_is_confirmed_or_declined_in_their_calendar(
    gql: GraphQLClient,
) -> None:
    biz = await create_business(gql, staff_count=0, service={"requiresConfirmation": True})
    _, ann_email = await _staff_with_email(gql, biz, "Ann", biz.service_id)
    day = next_monday()
    bookings = []
    for hour, name in ((9, "Dora"), (11, "Emil")):
        customer = await sign_up(gql, name=name)
        start = at(day, hour, BERLIN).isoformat()
        made = await create(gql, customer.token, serviceId=biz.service_id, start=start)
        assert made["booking"]["status"] == "PENDING_CONFIRMATION", made
        bookings.append(made["booking"]["id"])
        (request,) = await arrived(ann_email, f"New booking: {name}")
        assert event_of(invite_of(request))["status"] == "TENTATIVE"
    decide = "mutation($id: ID!) { %s(bookingId: $id) { errors { code } } }"
    await gql.data(decide % "confirmBooking", {"id": bookings[0]}, biz.owner.token)
    await gql.data(decide % "declineBooking", {"id": bookings[1]}, biz.owner.token)
    (confirmed,) = await arrived(ann_email, "Booking confirmed: Dora")
    assert event_of(invite_of(confirmed))["status"] == "CONFIRMED"
    (declined,) = await arrived(ann_email, "Booking declined: Emil")
    assert event_of(invite_of(declined))["method"] == "CANCEL"


async def test_a_receipt_long_forgotten_is_not_sent_again_when_its_booking_changes(
    gql: GraphQLClient, server: Server
) -> None:
    """Delivered messages are forgotten after 90 days (maintenance.py): a booking paid
    then, and moved now, must not send its receipt a second time."""
    biz = await paid_business(gql)
    made = await book(gql, biz, None)
    booking, token = made["booking"], made["manageToken"]
    paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert paid["confirmPayment"]["errors"] == []
    guest = booking["guestEmail"]
    await arrived(guest, "Payment receipt")
    decoded = from_global_id(booking["id"])
    assert decoded is not None
    async with server.app_state.engine.begin() as conn:  # paid long ago, its key forgotten
        await conn.execute(
            text(
                "UPDATE payments SET state_at = now() - interval '100 days',"
                " updated_at = now() - interval '100 days' WHERE booking_id = :b"
            ),
            {"b": decoded[1]},
        )
        await conn.execute(
            text(
                "DELETE FROM notification_deliveries WHERE dedupe_key LIKE :receipts"
                " AND recipient = :to"
            ),
            {"receipts": "payment:%:receipt", "to": guest},
        )
    later = datetime.fromisoformat(booking["start"]) + timedelta(hours=1)
    moved = {
        "bookingId": booking["id"],
        "start": later.isoformat(),
        "idempotencyKey": "later",
        "manageToken": token,
    }
    done = await gql.data(RESCHEDULE, {"input": moved})
    assert done["rescheduleBooking"]["errors"] == [], done
    await arrived(guest, "Booking moved")
    await asyncio.sleep(0.5)
    receipts = [m for m in messages_to(guest) if str(m["Subject"]).startswith("Payment receipt")]
    assert len(receipts) == 1
