"""The calendar invite of a booking e-mail (domain/notifications/invites.py), read back
with icalendar's own parser: one UID for a booking's whole life, a rising SEQUENCE,
REQUEST then CANCEL, exact UTC times, and text that survives escaping."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar, Event

from domain.booking.records import Actor, BookingChange, BookingStatus
from domain.notifications.invites import (
    Invite,
    build_invite,
    content_type,
    sequence_of,
    uid_of,
)

BOOKING = uuid.UUID("3f1c2b9e-8d7a-4c6b-9e5f-0a1b2c3d4e5f")
START = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # Europe's spring-forward night
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def invite(**changes: object) -> Invite:
    base = Invite(
        booking_id=BOOKING,
        start=START,
        end=START + timedelta(minutes=45),
        status=BookingStatus.CONFIRMED,
        sequence=0,
        title="Haircut with Ann",
        organization_name="Salon Nord",
        organizer_email="bookings@salon.example",
        attendee_email="carl@example.com",
        attendee_name="Carl Customer",
        location="Hauptstr. 1, Berlin",
        description="Manage your booking: https://salon.example/b/abc?token=x",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def parse(data: bytes) -> tuple[Calendar, Event]:
    calendar = Calendar.from_ical(data)
    assert isinstance(calendar, Calendar)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Event)
    return calendar, event


def change(status: BookingStatus, start: datetime) -> BookingChange:
    return BookingChange(NOW, status, start, start + timedelta(minutes=45), Actor.CUSTOMER, None)


def test_a_bookings_invites_share_one_uid_and_sequence_rises() -> None:
    moved = START + timedelta(days=2, hours=3)
    history = [change(BookingStatus.PENDING_CONFIRMATION, START)]
    created = invite(status=BookingStatus.PENDING_CONFIRMATION, sequence=sequence_of(history))
    history.append(change(BookingStatus.CONFIRMED, START))
    confirmed = invite(sequence=sequence_of(history))
    history.append(change(BookingStatus.CONFIRMED, moved))
    rescheduled = invite(start=moved, end=moved + timedelta(hours=1), sequence=sequence_of(history))
    history.append(change(BookingStatus.CANCELLED, moved))
    cancelled = invite(
        start=moved,
        end=moved + timedelta(hours=1),
        status=BookingStatus.CANCELLED,
        sequence=sequence_of(history),
    )
    parsed = [parse(build_invite(i, now=NOW)) for i in (created, confirmed, rescheduled, cancelled)]

    assert {str(e["UID"]) for _, e in parsed} == {uid_of(BOOKING)} == {f"{BOOKING}@booking-api"}
    assert [e.sequence for _, e in parsed] == [0, 1, 2, 3]
    assert [str(c["METHOD"]) for c, _ in parsed] == ["REQUEST", "REQUEST", "REQUEST", "CANCEL"]
    assert [str(e["STATUS"]) for _, e in parsed] == [
        "TENTATIVE",
        "CONFIRMED",
        "CONFIRMED",
        "CANCELLED",
    ]
    assert [e.start for _, e in parsed] == [START, START, moved, moved]
    assert parsed[2][1].end == moved + timedelta(hours=1)


def test_sequence_counts_the_changes_after_creation() -> None:
    assert sequence_of([]) == 0
    assert sequence_of([change(BookingStatus.CONFIRMED, START)]) == 0
    assert sequence_of([change(BookingStatus.CONFIRMED, START)] * 4) == 3


def test_the_calendar_and_event_carry_the_required_properties() -> None:
    data = build_invite(invite(sequence=5), now=NOW)
    calendar, event = parse(data)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n")
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]).startswith("-//booking-api//")
    assert event.DTSTAMP == NOW
    assert str(event["SUMMARY"]) == "Haircut with Ann"
    assert str(event["LOCATION"]) == "Hauptstr. 1, Berlin"
    assert str(event["DESCRIPTION"]).endswith("?token=x")
    assert str(event["ORGANIZER"]) == "mailto:bookings@salon.example"
    assert event["ORGANIZER"].params["CN"] == "Salon Nord"
    assert str(event["ATTENDEE"]) == "mailto:carl@example.com"
    assert event["ATTENDEE"].params["CN"] == "Carl Customer"
    assert calendar.timezones == []  # UTC times need no VTIMEZONE


def test_times_go_out_exact_in_utc_whatever_zone_they_come_in() -> None:
    berlin = timezone(timedelta(hours=2))
    start = datetime(2026, 7, 1, 9, 15, 30, tzinfo=berlin)
    data = build_invite(invite(start=start, end=start + timedelta(minutes=30)), now=NOW)
    assert b"DTSTART:20260701T071530Z\r\n" in data
    assert b"DTEND:20260701T074530Z\r\n" in data
    _, event = parse(data)
    assert isinstance(event.start, datetime)
    assert event.start == start
    assert event.start.utcoffset() == timedelta(0)


def test_the_content_type_names_the_calendars_method() -> None:
    assert content_type(BookingStatus.CONFIRMED) == "text/calendar; method=REQUEST; charset=UTF-8"
    assert content_type(BookingStatus.PENDING_PAYMENT) == (
        "text/calendar; method=REQUEST; charset=UTF-8"
    )
    for ended in (BookingStatus.CANCELLED, BookingStatus.DECLINED, BookingStatus.EXPIRED):
        assert content_type(ended) == "text/calendar; method=CANCEL; charset=UTF-8"
        calendar, event = parse(build_invite(invite(status=ended), now=NOW))
        assert str(calendar["METHOD"]) == "CANCEL"
        assert str(event["STATUS"]) == "CANCELLED"


def test_optional_text_is_left_out_when_missing() -> None:
    _, event = parse(
        build_invite(invite(location=None, description=None, attendee_name=None), now=NOW)
    )
    assert "LOCATION" not in event
    assert "DESCRIPTION" not in event
    assert "CN" not in event["ATTENDEE"].params


def test_commas_semicolons_and_newlines_are_escaped_and_come_back() -> None:
    title = "Cut, wash; dry\nwith Ann \\ Bob"
    data = build_invite(invite(title=title, attendee_name="Doe, Jane; Dr."), now=NOW)
    assert b"SUMMARY:Cut\\, wash\\; dry\\nwith Ann \\\\ Bob\r\n" in data
    _, event = parse(data)
    assert str(event["SUMMARY"]) == title
    assert event["ATTENDEE"].params["CN"] == "Doe, Jane; Dr."


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        invite(start=datetime(2026, 1, 1, 9))
    with pytest.raises(ValueError, match="end after"):
        invite(end=START)
    with pytest.raises(ValueError, match="negative"):
        invite(sequence=-1)


# RFC 5545 TEXT allows no control characters but HTAB, and a bare CR does not survive
# line handling; everything else, any script and emoji, must come back unchanged.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r")
    | st.sampled_from('\n\t,;:\\"'),
    min_size=1,
)


@given(title=TEXT, description=TEXT, location=TEXT)
def test_any_text_round_trips(title: str, description: str, location: str) -> None:
    data = build_invite(invite(title=title, description=description, location=location), now=NOW)
    _, event = parse(data)
    assert str(event["SUMMARY"]) == title
    assert str(event["DESCRIPTION"]) == description
    assert str(event["LOCATION"]) == location
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))


def test_dtstamp_defaults_to_the_current_time_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    _, event = parse(build_invite(invite()))
    assert before <= event.DTSTAMP <= datetime.now(UTC)
