"""Reminders 24 hours and 1 hour before a confirmed booking, with the time moved by the
test instead of waited for: `reminders.queue_due(now)` and the dispatcher's
`dispatch_once(now)` are given instants a week ahead, which the running server's own
dispatcher (on the real clock) never reaches, so only these calls queue and send them.
Messages go to the server's mailer (MAIL_DIR)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select, text

from domain.notifications import deliveries, reminders
from domain.notifications.tables import notification_deliveries as table
from infra.ids import from_global_id
from tests.booking_api import CANCEL, RESCHEDULE, create
from tests.business import Person, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.mailbox import messages_to
from tests.notification_helpers import arrived
from tests.test_notifications import BERLIN, at, next_monday
from tests.test_organization_settings import UPDATE as SET_POLICY

DAY = timedelta(hours=24)
PREFERENCES = """
mutation($input: UpdateNotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) { errors { code field message } }
}"""


class World:
    def __init__(self, server: Server) -> None:
        self.engine = server.app_state.engine
        self.notifier = server.app_state.notifier
        self.mailer = server.app_state.mailer

    async def queue(self, booking_id: str, now: datetime) -> int:
        """Runs the reminders' scan at `now`; how many reminders of this booking it
        queued (other tests' bookings may fall due at the same made-up time)."""
        before = len(await self.reminder_ids(booking_id))
        await reminders.queue_due(self.engine, self.notifier.letterhead, now)
        return len(await self.reminder_ids(booking_id)) - before

    async def send(
        self, booking_id: str, now: datetime, mailer: Any = None, sms: Any = None
    ) -> deliveries.Dispatched:
        """Dispatches this booking's queued reminders at `now`."""
        ids = await self.reminder_ids(booking_id)
        return await deliveries.dispatch_once(
            self.engine,
            mailer or self.mailer,
            now,
            guard=reminders.still_due,
            only=ids,
            sms=sms,
        )

    async def reminder_ids(self, booking_id: str) -> list[uuid.UUID]:
        key = from_global_id(booking_id)
        assert key is not None
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(table.c.id).where(table.c.booking_id == key[1]))
            return list(rows.scalars())

    async def statuses(self, booking_id: str) -> list[str]:
        key = from_global_id(booking_id)
        assert key is not None
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(table.c.status).where(table.c.booking_id == key[1]))
            return sorted(rows.scalars())


def reminders_to(person: Person) -> list[str]:
    return [
        str(m["Subject"])
        for m in messages_to(person.email)
        if str(m["Subject"]).startswith("Reminder")
    ]


async def booked(gql: GraphQLClient, hour: int = 10) -> tuple[Person, str, datetime]:
    biz = await create_business(gql)
    customer = await sign_up(gql)
    start = at(next_monday(weeks_ahead=2), hour, BERLIN)
    made = await create(gql, customer.token, serviceId=biz.service_id, start=start.isoformat())
    assert made["errors"] == [], made
    return customer, made["booking"]["id"], start


async def test_a_booking_is_reminded_a_day_and_an_hour_ahead_once_each(
    gql: GraphQLClient, server: Server
) -> None:
    world = World(server)
    customer, booking_id, start = await booked(gql)
    assert await world.queue(booking_id, start - DAY - timedelta(minutes=1)) == 0  # not yet
    day_before = start - DAY + timedelta(minutes=1)
    assert await world.queue(booking_id, day_before) == 1
    assert await world.queue(booking_id, day_before) == 0  # queued once
    sent = await world.send(booking_id, day_before)
    assert sent.sent == 1
    assert reminders_to(customer) == ["Reminder: Appointment at Test Business in 24 hours"]
    hour_before = start - timedelta(minutes=59)
    assert await world.queue(booking_id, hour_before) == 1
    assert (await world.send(booking_id, hour_before)).sent == 1
    assert reminders_to(customer)[-1] == "Reminder: Appointment at Test Business in 1 hour"
    assert await world.queue(booking_id, start + timedelta(minutes=1)) == 0  # started: nothing more


async def test_a_rescheduled_booking_is_reminded_of_its_new_time_only(
    gql: GraphQLClient, server: Server
) -> None:
    world = World(server)
    customer, booking_id, start = await booked(gql)
    later = start + DAY
    moved = await gql.data(
        RESCHEDULE,
        {"input": {"bookingId": booking_id, "start": later.isoformat(), "idempotencyKey": "m"}},
        customer.token,
    )
    assert moved["rescheduleBooking"]["errors"] == []
    assert await world.queue(booking_id, start - DAY + timedelta(minutes=1)) == 0
    assert await world.queue(booking_id, later - DAY + timedelta(minutes=1)) == 1
    assert (await world.send(booking_id, later - DAY + timedelta(minutes=1))).sent == 1
    (reminder,) = [
        m for m in messages_to(customer.email) if str(m["Subject"]).startswith("Reminder")
    ]
    body = reminder.get_body(("plain",))
    assert body is not None
    assert f"{later.day} " in body.get_content()


async def test_a_reminder_queued_before_a_cancellation_is_dropped_not_sent(
    gql: GraphQLClient, server: Server
) -> None:
    world = World(server)
    customer, booking_id, start = await booked(gql)
    due = start - DAY + timedelta(minutes=1)
    assert await world.queue(booking_id, due) == 1
    cancelled = await gql.data(CANCEL, {"input": {"bookingId": booking_id}}, customer.token)
    assert cancelled["cancelBooking"]["errors"] == []
    outcome = await world.send(booking_id, due)
    assert (outcome.sent, outcome.dropped) == (0, 1)
    assert await world.statuses(booking_id) == ["DROPPED"]
    assert reminders_to(customer) == []
    assert (
        await world.queue(booking_id, start - timedelta(minutes=59)) == 0
    )  # never looked at again


class HeldMailer:
    """Holds the send until released: the moment a cancellation lands mid-send."""

    def __init__(self, mailer: Any) -> None:
        self.mailer = mailer
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        await self.send_raw(bytes(message), "", [str(message["To"])])

    async def send_raw(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        self.sending.set()
        await self.release.wait()
        await self.mailer.send_raw(data, sender, recipients)


async def test_a_cancellation_during_the_send_waits_for_the_reminder_to_leave(
    gql: GraphQLClient, server: Server
) -> None:
    """The guard holds the booking FOR SHARE while the reminder is sent: a cancellation
    arriving then commits only after the reminder has left (it was true when sent), and
    one arriving before the send is seen by the guard (the test above)."""
    world = World(server)
    customer, booking_id, start = await booked(gql)
    due = start - DAY + timedelta(minutes=1)
    assert await world.queue(booking_id, due) == 1
    held = HeldMailer(world.mailer)
    sending = asyncio.create_task(world.send(booking_id, due, held))
    await asyncio.wait_for(held.sending.wait(), 5)
    cancel = asyncio.create_task(
        gql.data(CANCEL, {"input": {"bookingId": booking_id}}, customer.token)
    )
    await asyncio.sleep(0.5)
    assert not cancel.done()  # waiting for the reminder's lock
    held.release.set()
    assert (await sending).sent == 1
    assert (await asyncio.wait_for(cancel, 5))["cancelBooking"]["errors"] == []
    assert len(reminders_to(customer)) == 1


async def test_reminders_follow_the_customers_preference(
    gql: GraphQLClient, server: Server
) -> None:
    world = World(server)
    customer, booking_id, start = await booked(gql)
    off = await gql.data(PREFERENCES, {"input": {"emailReminders": False}}, customer.token)
    assert off["updateNotificationPreferences"]["errors"] == []
    assert await world.queue(booking_id, start - DAY + timedelta(minutes=1)) == 0
    on = await gql.data(PREFERENCES, {"input": {"emailReminders": True}}, customer.token)
    assert on["updateNotificationPreferences"]["errors"] == []
    due = start - timedelta(minutes=59)
    assert await world.queue(booking_id, due) == 1
    # Turned off again after it was queued: dropped at the send.
    await gql.data(PREFERENCES, {"input": {"emailReminders": False}}, customer.token)
    assert (await world.send(booking_id, due)).dropped == 1
    assert reminders_to(customer) == []
    # Transactional messages still go.
    await arrived(customer.email, "Booking confirmed")


async def test_an_organization_chooses_when_its_customers_are_reminded(
    gql: GraphQLClient, server: Server
) -> None:
    world = World(server)
    biz = await create_business(gql)
    refused = await gql.data(
        SET_POLICY,
        {"input": {"organizationId": biz.org_id, "reminderMinutesBefore": [5, 60]}},
        biz.owner.token,
    )
    errors = refused["updateOrganizationSettings"]["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("INVALID_INPUT", "input.reminderMinutesBefore")
    ]
    chosen = await gql.data(
        SET_POLICY,
        {"input": {"organizationId": biz.org_id, "reminderMinutesBefore": [30, 2880]}},
        biz.owner.token,
    )
    assert chosen["updateOrganizationSettings"]["errors"] == []
    customer = await sign_up(gql)
    start = at(next_monday(weeks_ahead=2), 10, BERLIN)
    made = await create(gql, customer.token, serviceId=biz.service_id, start=start.isoformat())
    booking_id = made["booking"]["id"]
    assert await world.queue(booking_id, start - DAY + timedelta(minutes=1)) == 0  # no 24-hour one
    two_days = start - 2 * DAY + timedelta(minutes=1)
    assert await world.queue(booking_id, two_days) == 1
    assert (await world.send(booking_id, two_days)).sent == 1
    half_hour = start - timedelta(minutes=29)
    assert await world.queue(booking_id, half_hour) == 1
    assert (await world.send(booking_id, half_hour)).sent == 1
    assert reminders_to(customer) == [
        "Reminder: Appointment at Test Business in 2 days",
        "Reminder: Appointment at Test Business in 30 minutes",
    ]
    none = await gql.data(
        SET_POLICY,
        {"input": {"organizationId": biz.org_id, "reminderMinutesBefore": []}},
        biz.owner.token,
    )
    assert none["updateOrganizationSettings"]["errors"] == []


class Texts:
    """An SMS channel that keeps what it is given."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))

    async def close(self) -> None:
        return None


async def test_a_verified_phone_gets_the_reminder_as_a_text_too(
    gql: GraphQLClient, server: Server
) -> None:
    world = World(server)
    customer, booking_id, start = await booked(gql)
    phone = f"+4915{uuid.uuid4().int % 10**9:09d}"
    user = from_global_id(customer.user_id)
    assert user is not None
    async with world.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET verified_phone = :phone WHERE id = :id"),
            {"phone": phone, "id": user[1]},
        )
    texts = Texts()
    due = start - DAY + timedelta(minutes=1)
    assert await world.queue(booking_id, due) == 2  # an e-mail and a text
    assert (await world.send(booking_id, due, sms=texts)).sent == 2
    ((to, body),) = texts.sent
    assert to == phone
    assert body.startswith("Reminder: Appointment at Test Business in 24 hours, ")
    assert "(Europe/Berlin)" in body
    off = await gql.data(PREFERENCES, {"input": {"smsReminders": False}}, customer.token)
    assert off["updateNotificationPreferences"]["errors"] == []
    hour = start - timedelta(minutes=59)
    assert await world.queue(booking_id, hour) == 1  # the e-mail only
    assert (await world.send(booking_id, hour, sms=texts)).sent == 1
    assert len(texts.sent) == 1


async def test_a_late_reminder_says_the_time_left_and_none_goes_after_the_start(
    gql: GraphQLClient, server: Server
) -> None:
    """After an outage: the day-ahead reminder queued 20 hours ahead says so; one whose
    send comes after the start is dropped."""
    world = World(server)
    customer, booking_id, start = await booked(gql)
    late = start - timedelta(hours=20)
    assert await world.queue(booking_id, late) == 1
    assert (await world.send(booking_id, late)).sent == 1
    assert reminders_to(customer) == ["Reminder: Appointment at Test Business in 20 hours"]
    assert await world.queue(booking_id, start - timedelta(minutes=59)) == 1
    outcome = await world.send(booking_id, start + timedelta(minutes=1))
    assert (outcome.sent, outcome.dropped) == (0, 1)
    assert len(reminders_to(customer)) == 1
