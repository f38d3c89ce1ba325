"""The booking e-mails' words (domain/notifications/messages.py): every kind renders in
text and HTML, times in the recipient's zone with the zone named, HTML escaped, the
guest's manage link only for guests, money exact, a missing value loud, and the
EmailMessage carrying text, HTML and the .ics. No database, no sending."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest
from icalendar import Calendar
from jinja2 import UndefinedError

from domain.booking.records import BookingStatus
from domain.notifications.invites import Invite, build_invite, content_type, uid_of
from domain.notifications.messages import (
    EN_DASH,
    MessageData,
    MessageKind,
    Rendered,
    format_money,
    format_range,
    render,
    to_email,
)

D = EN_DASH
# 09:00 in Berlin, 03:00 in New York (both on winter time).
START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
LINK = "https://booking.example/manage/abc?token=x&y=1"


def data(**changes: object) -> MessageData:
    base = MessageData(
        recipient_name="Carl",
        recipient_email="carl@example.com",
        time_zone="Europe/Berlin",
        organization_name="Hudson Barbers",
        service_name="Haircut",
        staff_name="Ann",
        start=START,
        end=START + timedelta(hours=1),
        customer_name="Carl",
        previous_start=START - timedelta(days=1),
        previous_end=START - timedelta(days=1) + timedelta(hours=1),
        amount=4500,
        currency="EUR",
        reason="Staff ill",
        payment_due=START - timedelta(days=2),
        lead_minutes=1440,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def customer_kinds() -> list[MessageKind]:
    return [kind for kind in MessageKind if not kind.to_staff]


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_kind_renders_text_and_html_with_the_organization(kind: MessageKind) -> None:
    given = data(manage_link=None) if kind.to_staff else data()
    rendered = render(kind, given)
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "Hudson Barbers" in rendered.text
    assert "Hudson Barbers" in rendered.html
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert f"Monday 7 December 2026, 09:00{D}10:00 CET (Europe/Berlin)" in rendered.text
    assert "\n\n\n" not in rendered.text
    assert "Hello Carl," in rendered.text


def test_a_berlin_customer_of_a_new_york_business_sees_berlin_time() -> None:
    rendered = render(MessageKind.BOOKING_CONFIRMED, data(time_zone="Europe/Berlin"))
    assert f"09:00{D}10:00 CET (Europe/Berlin)" in rendered.text
    assert f"09:00{D}10:00 CET (Europe/Berlin)" in rendered.html
    assert "03:00" not in rendered.text

    staff = render(
        MessageKind.STAFF_BOOKING_NEW, data(recipient_name="Ann", time_zone="America/New_York")
    )
    assert f"Monday 7 December 2026, 03:00{D}04:00 EST (America/New_York)" in staff.text


def test_summer_time_and_zones_without_letters() -> None:
    summer = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert (
        format_range(summer, summer + timedelta(minutes=30), "Europe/Berlin")
        == f"Wednesday 1 July 2026, 09:00{D}09:30 CEST (Europe/Berlin)"
    )
    assert (
        format_range(summer, summer + timedelta(hours=1), "Asia/Dubai")
        == f"Wednesday 1 July 2026, 11:00{D}12:00 (Asia/Dubai)"
    )
    late = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)  # 23:30 in Berlin, past midnight at end
    assert format_range(late, late + timedelta(hours=1), "Europe/Berlin") == (
        "Wednesday 1 July 2026, 23:30 CEST (Europe/Berlin)"
        f" {D} Thursday 2 July 2026, 00:30 CEST (Europe/Berlin)"
    )


def test_html_escapes_what_the_customer_typed() -> None:
    name = "<script>alert(1)</script>"
    rendered = render(
        MessageKind.STAFF_BOOKING_NEW,
        data(customer_name=name, recipient_name="Ann & Co", reason="<b>x</b>"),
    )
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Ann &amp; Co" in rendered.html
    assert name in rendered.text  # plain text is not HTML: nothing to escape
    assert name in rendered.subject


@pytest.mark.parametrize("kind", customer_kinds())
def test_a_guest_gets_the_manage_link_a_signed_in_customer_does_not(kind: MessageKind) -> None:
    guest = render(kind, data(manage_link=LINK))
    assert LINK in guest.text
    assert 'href="https://booking.example/manage/abc?token=x&amp;y=1"' in guest.html

    customer = render(kind, data(manage_link=None))
    assert "manage" not in customer.text
    assert "booking.example" not in customer.html


def test_a_staff_message_refuses_a_guest_manage_link() -> None:
    with pytest.raises(ValueError, match="manage link"):
        render(MessageKind.STAFF_BOOKING_NEW, data(manage_link=LINK))


@pytest.mark.parametrize("kind", [MessageKind.BOOKING_RESCHEDULED, MessageKind.STAFF_BOOKING_MOVED])
def test_a_move_shows_the_old_and_the_new_time(kind: MessageKind) -> None:
    rendered = render(kind, data())
    old = f"Sunday 6 December 2026, 09:00{D}10:00 CET (Europe/Berlin)"
    new = f"Monday 7 December 2026, 09:00{D}10:00 CET (Europe/Berlin)"
    for body in (rendered.text, rendered.html):
        assert old in body
        assert new in body
        assert body.index(new) < body.index(old)  # the new time first


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(4500, "EUR", "45.00 EUR"), (4500, "JPY", "4500 JPY"), (5, "usd", "0.05 USD")],
)
@pytest.mark.parametrize("kind", [MessageKind.PAYMENT_RECEIPT, MessageKind.PAYMENT_REFUND])
def test_receipts_and_refunds_show_the_money_exactly(
    kind: MessageKind, amount: int, currency: str, shown: str
) -> None:
    rendered = render(kind, data(amount=amount, currency=currency))
    assert shown in rendered.subject
    assert shown in rendered.text
    assert shown in rendered.html


def test_money_formats() -> None:
    assert format_money(4500, "EUR") == "45.00 EUR"
    assert format_money(4500, "JPY") == "4500 JPY"
    assert format_money(4500, "KRW") == "4500 KRW"
    assert format_money(12345, "KWD") == "12.345 KWD"
    assert format_money(0, "EUR") == "0.00 EUR"
    assert format_money(-250, "EUR") == "-2.50 EUR"
    assert format_money(123456789, "EUR") == "1234567.89 EUR"


def test_a_reason_and_a_payment_deadline_appear_when_given() -> None:
    cancelled = render(MessageKind.BOOKING_CANCELLED, data(reason="Staff ill"))
    assert "Reason: Staff ill" in cancelled.text
    assert "Reason" not in render(MessageKind.BOOKING_CANCELLED, data(reason=None)).text

    received = render(MessageKind.BOOKING_RECEIVED, data())
    assert "Saturday 5 December 2026, 09:00 CET (Europe/Berlin)" in received.text
    assert "payment" not in render(MessageKind.BOOKING_RECEIVED, data(payment_due=None)).text


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        (MessageKind.BOOKING_RESCHEDULED, {"previous_start": None, "previous_end": None}),
        (MessageKind.STAFF_BOOKING_MOVED, {"previous_start": None, "previous_end": None}),
        (MessageKind.PAYMENT_RECEIPT, {"amount": None, "currency": None}),
        (MessageKind.PAYMENT_REFUND, {"amount": None, "currency": None}),
        (MessageKind.STAFF_BOOKING_NEW, {"customer_name": None}),
        (MessageKind.REMINDER, {"lead_minutes": None}),
    ],
)
def test_a_missing_value_fails_loudly(kind: MessageKind, missing: dict[str, object]) -> None:
    with pytest.raises(UndefinedError):
        render(kind, data(**missing))


def test_bad_data_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="aware"):
        data(start=datetime(2026, 12, 7, 9, 0))
    with pytest.raises(ValueError, match="end after"):
        data(end=START)
    with pytest.raises(ValueError, match="currency"):
        data(currency=None)
    with pytest.raises(KeyError):  # ZoneInfoNotFoundError
        data(time_zone="Mars/Olympus")


def parse(message: Message) -> EmailMessage:
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_to_email_is_text_and_html_alternatives() -> None:
    rendered = render(MessageKind.BOOKING_CONFIRMED, data(recipient_name="Zoë"))
    message = parse(
        to_email(rendered, sender="Hudson Barbers <b@x.example>", recipient="carl@example.com")
    )
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == rendered.subject
    assert message["To"] == "carl@example.com"
    assert message["Message-ID"]
    assert message["Date"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == rendered.text
    assert html.get_content() == rendered.html
    assert "Zoë" in text.get_content()
    assert not list(message.iter_attachments())


@pytest.mark.parametrize("status", [BookingStatus.CONFIRMED, BookingStatus.CANCELLED])
def test_to_email_carries_the_invite(status: BookingStatus) -> None:
    booking = uuid.uuid4()
    invite = build_invite(
        Invite(
            booking_id=booking,
            start=START,
            end=START + timedelta(hours=1),
            status=status,
            sequence=1,
            title="Haircut with Ann",
            organization_name="Hudson Barbers",
            organizer_email="b@x.example",
            attendee_email="carl@example.com",
            attendee_name="Carl",
        ),
        now=START - timedelta(days=3),
    )
    rendered = render(MessageKind.BOOKING_CONFIRMED, data())
    message = parse(
        to_email(
            rendered,
            sender="b@x.example",
            recipient="carl@example.com",
            invite=invite,
            invite_content_type=content_type(status),
        )
    )
    method = "CANCEL" if status is BookingStatus.CANCELLED else "REQUEST"
    assert message.get_content_type() == "multipart/mixed"
    alternative = next(iter(message.iter_parts()))
    assert alternative.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in alternative.iter_parts()]
    assert types == ["text/plain", "text/html", "text/calendar"]
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content() == rendered.text

    inline = list(alternative.iter_parts())[2]
    assert inline.get_param("method") == method
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["invite.ics"]

    for part in (inline, attachments[0]):
        raw = part.get_payload(decode=True)
        assert isinstance(raw, bytes)
        calendar = Calendar.from_ical(raw)
        assert str(calendar["METHOD"]) == method
        (event,) = calendar.walk("VEVENT")
        assert str(event["UID"]) == uid_of(booking)
        assert event.decoded("DTSTART") == START


def test_to_email_wants_a_calendar_content_type_with_the_invite() -> None:
    rendered = Rendered(subject="s", text="t", html="<p>h</p>")
    with pytest.raises(ValueError, match="content type"):
        to_email(rendered, sender="a@x.example", recipient="b@x.example", invite=b"x")
    with pytest.raises(ValueError, match="calendar"):
        to_email(
            rendered,
            sender="a@x.example",
            recipient="b@x.example",
            invite=b"x",
            invite_content_type="text/plain",
        )


@pytest.mark.parametrize(
    ("minutes", "shown"),
    [
        (1440, "24 hours"),
        (60, "1 hour"),
        (2880, "2 days"),
        (90, "1 hour 30 minutes"),
        (30, "30 minutes"),
    ],
)
def test_a_reminder_says_how_far_ahead_it_is(minutes: int, shown: str) -> None:
    rendered = render(MessageKind.REMINDER, data(lead_minutes=minutes))
    assert rendered.subject == f"Reminder: Haircut at Hudson Barbers in {shown}"
    assert f"starts in {shown}." in rendered.text
