"""The calendar invite a booking e-mail carries: RFC 5545 (.ics) bytes, built with icalendar.

Pure: plain data in, bytes out; no I/O, no database, no clock unless the caller gives none.

One booking is one VEVENT for its whole life, so the clients that took the first invite
update (or remove) that event instead of adding a second one:

- UID comes from the booking id alone, never from its times: a rescheduled booking keeps it.
- SEQUENCE is the caller's, taken from the booking's history (`sequence_of`): it rises on
  every change (reschedule, confirmation, cancellation), and a client ignores an invite
  whose SEQUENCE is not above the one it has.
- METHOD:REQUEST while the booking stands, METHOD:CANCEL with STATUS:CANCELLED once it
  ends without taking place (cancelled, declined, expired), with the same UID.

Times go out in UTC (DTSTART:20260101T090000Z). A single, non-recurring event needs no
time zone rules to be exact, every client shows UTC times in its reader's own zone, and
no VTIMEZONE (built from the sender's tz data, disliked by some clients for IANA names)
has to travel along. The recipient's zone matters only for the e-mail's text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

from domain.booking.records import BookingChange, BookingStatus

PRODID = "-//booking-api//invites//EN"
UID_DOMAIN = "booking-api"

# Statuses whose invite takes the event off the calendar again.
CANCELLING = frozenset({BookingStatus.CANCELLED, BookingStatus.DECLINED, BookingStatus.EXPIRED})
# Statuses still waiting on payment or the business: the slot is kept, not yet certain.
TENTATIVE = frozenset({BookingStatus.PENDING_PAYMENT, BookingStatus.PENDING_CONFIRMATION})


@dataclass(frozen=True, slots=True)
class Invite:
    """What a booking's invite says. start, end and now are aware datetimes (any zone;
    they go out in UTC). sequence: see `sequence_of`. organizer_email is the
    organization's sender address (MAIL_FROM), attendee_* the customer's."""

    booking_id: uuid.UUID
    start: datetime
    end: datetime
    status: BookingStatus
    sequence: int
    title: str
    organization_name: str
    organizer_email: str
    attendee_email: str
    attendee_name: str | None = None
    location: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("An invite's start and end must be aware datetimes.")
        if self.end <= self.start:
            raise ValueError("An invite must end after it starts.")
        if self.sequence < 0:
            raise ValueError("An invite's sequence cannot be negative.")


def sequence_of(changes: Sequence[BookingChange]) -> int:
    """SEQUENCE for a booking with this history (history_of's list, oldest first): the
    number of changes after its creation, which is history's first entry."""
    return max(len(changes) - 1, 0)


def uid_of(booking_id: uuid.UUID) -> str:
    return f"{booking_id}@{UID_DOMAIN}"


def method_of(status: BookingStatus) -> str:
    return "CANCEL" if status in CANCELLING else "REQUEST"


def content_type(status: BookingStatus) -> str:
    """The MIME type of the invite's part: its method must match the calendar's METHOD."""
    return f"text/calendar; method={method_of(status)}; charset=UTF-8"


def _event_status(status: BookingStatus) -> str:
    if status in CANCELLING:
        return "CANCELLED"
    return "TENTATIVE" if status in TENTATIVE else "CONFIRMED"


def _address(email: str, name: str | None, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    for key, value in params.items():
        address.params[key.replace("_", "-").upper()] = vText(value)
    return address


def build_invite(invite: Invite, *, now: datetime | None = None) -> bytes:
    """The .ics bytes (one VCALENDAR with one VEVENT) for `invite`; DTSTAMP is `now`,
    the current time when not given."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method_of(invite.status))

    event = Event()
    event.add("uid", uid_of(invite.booking_id))
    event.add("sequence", invite.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", invite.start.astimezone(UTC))
    event.add("dtend", invite.end.astimezone(UTC))
    event.add("status", _event_status(invite.status))
    event.add("summary", invite.title)
    if invite.description:
        event.add("description", invite.description)
    if invite.location:
        event.add("location", invite.location)
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(invite.organizer_email, invite.organization_name))
    event.add(
        "attendee",
        _address(
            invite.attendee_email,
            invite.attendee_name,
            role="REQ-PARTICIPANT",
            partstat="ACCEPTED",
            rsvp="FALSE",
        ),
    )
    calendar.add_component(event)
    data: bytes = calendar.to_ical()  # icalendar leaves to_ical untyped
    return data
