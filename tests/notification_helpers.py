"""Waiting for the messages the server's notification worker sends (to MAIL_DIR, as
tests/mailbox.py reads them), and reading their calendar invites."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

from icalendar import Calendar

from tests.mailbox import messages_to, text_of

__all__ = ["arrived", "event_of", "invite_of", "text_of"]


async def arrived(
    address: str, subject_start: str, *, count: int = 1, within: float = 15.0
) -> list[EmailMessage]:
    """The messages to `address` whose subject starts so, once `count` have arrived."""
    deadline = time.monotonic() + within
    while True:
        found = [m for m in messages_to(address) if str(m["Subject"]).startswith(subject_start)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            subjects = [str(m["Subject"]) for m in messages_to(address)]
            raise AssertionError(f"{count} x {subject_start!r} to {address}; has {subjects}")
        await asyncio.sleep(0.05)


def invite_of(message: EmailMessage) -> Calendar:
    """The .ics attached to a message, parsed back."""
    for part in message.walk():
        if part.get_filename() == "invite.ics":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return Calendar.from_ical(payload)
    raise AssertionError(f"no invite in {message['Subject']!r}")


def event_of(calendar: Calendar) -> dict[str, str]:
    """The one event's UID, SEQUENCE, STATUS and DTSTART, and the calendar's METHOD."""
    (event,) = calendar.walk("VEVENT")
    return {
        "method": str(calendar["METHOD"]),
        "uid": str(event["UID"]),
        "sequence": str(event["SEQUENCE"]),
        "status": str(event["STATUS"]),
        "start": event.decoded("DTSTART").isoformat(),
    }
