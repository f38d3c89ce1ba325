"""The booking domain's public API: holds, bookings and their life. The resolvers and the
app import from here; the work is done in the modules named for it.

Every write runs in its own transaction opened in those modules, because the fast-path
slot lock must be released only after the commit made the claim visible.
"""

from __future__ import annotations

from domain.booking.access import manage_token_for, manage_tokens
from domain.booking.allocation import claims_loader
from domain.booking.create import create_booking
from domain.booking.history import history_of
from domain.booking.holds import hold_slot
from domain.booking.lifecycle import (
    cancel_booking,
    confirm_booking,
    decline_booking,
    reschedule_booking,
)
from domain.booking.maintenance import (
    clear_expired_holds,
    complete_past_bookings,
    forget_old_idempotency_keys,
)
from domain.booking.queries import Page, booking_and_roles, bookings_page, readable_booking
from domain.booking.queries import load_booking as booking_by_id
from domain.booking.records import Actor
from domain.booking.requests import BookingRequest, BookingResult, Guest, Policy
from domain.booking.unpaid import abandon_unpaid, expire_unpaid, mark_paid
from domain.booking.upcoming import bookings_by_id, confirmed_starting, still_confirmed_at

# Who pays for a booking: its customer, or its guest holding the manage token.
PAYERS = frozenset({Actor.CUSTOMER, Actor.GUEST})

__all__ = [
    "PAYERS",
    "BookingRequest",
    "BookingResult",
    "Guest",
    "Page",
    "Policy",
    "abandon_unpaid",
    "booking_and_roles",
    "booking_by_id",
    "bookings_by_id",
    "bookings_page",
    "cancel_booking",
    "claims_loader",
    "clear_expired_holds",
    "complete_past_bookings",
    "confirm_booking",
    "confirmed_starting",
    "create_booking",
    "decline_booking",
    "expire_unpaid",
    "forget_old_idempotency_keys",
    "history_of",
    "hold_slot",
    "manage_token_for",
    "manage_tokens",
    "mark_paid",
    "readable_booking",
    "reschedule_booking",
    "still_confirmed_at",
]
