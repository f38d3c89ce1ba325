"""What callers ask the booking domain for, what they get back, and the deployment's
policy: plain records, and the checks a request must pass before any SQL."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.availability.records import Service, Staff
from domain.booking.records import Booking
from domain.errors import Problems
from domain.users.records import Organization
from domain.validation import is_email, is_phone

MAX_NOTES = 2000


@dataclass(frozen=True, slots=True)
class Guest:
    name: str
    email: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class BookingRequest:
    service_id: uuid.UUID | None  # None: the id named no service
    start: datetime
    staff_id: uuid.UUID | None
    any_staff: bool
    idempotency_key: str
    hold_id: uuid.UUID | None
    hold_id_given: bool
    notes: str | None
    guest: Guest | None

    def fingerprint(self, viewer: uuid.UUID | None) -> bytes:
        """What makes two requests "the same input" for idempotency."""
        body = {
            "service": str(self.service_id),
            "start": int(self.start.timestamp()),
            "staff": None if self.any_staff else str(self.staff_id),
            "hold": str(self.hold_id) if self.hold_id_given else None,
            "notes": self.notes,
            "guest": None
            if viewer or self.guest is None
            else [
                self.guest.name,
                self.guest.email.lower(),
                self.guest.phone,
            ],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


@dataclass(frozen=True, slots=True)
class BookingResult:
    booking: Booking
    manage_token: str | None  # only for a guest's new booking, never on a replay
    # What the booking was made with, read in its transaction: the caller may show them
    # without reading them again (None on a replay).
    service: Service | None = None
    staff: Staff | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """What the deployment decides: BOOKING_HOLD_SECONDS overrides every organization."""

    hold_seconds: int | None = None
    # Guests' manage tokens are derived with it (access.manage_token_for); None: random.
    manage_key: bytes | None = None

    def hold_time(self, org: Organization) -> timedelta:
        if self.hold_seconds is not None:
            return timedelta(seconds=self.hold_seconds)
        return timedelta(minutes=org.hold_minutes)


def check_request(request: BookingRequest, viewer: uuid.UUID | None) -> None:
    """Every problem of the input at once, before the request touches the database."""
    problems = Problems()
    if not 1 <= len(request.idempotency_key) <= 200:
        problems.add("input.idempotencyKey", "Send an idempotency key of 1 to 200 characters.")
    if request.notes is not None and len(request.notes) > MAX_NOTES:
        problems.add("input.notes", f"Use at most {MAX_NOTES} characters.")
    if viewer is None:
        if request.guest is None:
            problems.add("input.guest", "Sign in, or give your name and e-mail to book as a guest.")
        else:
            if not request.guest.name.strip():
                problems.add("input.guest.name", "Enter your name.")
            if not is_email(request.guest.email.strip().lower()):
                problems.add("input.guest.email", "Enter a valid e-mail address.")
            if request.guest.phone and not is_phone(request.guest.phone):
                problems.add("input.guest.phone", "Enter the phone number like +14155550123.")
    if request.staff_id is None and not request.any_staff:
        problems.add("input.staffId", "No such staff member.")
    if request.hold_id_given and request.hold_id is None:
        problems.add("input.holdId", "No such hold.")
    problems.check()
