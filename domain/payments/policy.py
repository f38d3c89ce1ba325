"""How much of a payment goes back when its booking ends unkept: the organization's
refund policy (OrganizationSettings), pure arithmetic on integer minor units."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.booking.records import Actor, BookingStatus

CUSTOMERS = frozenset({Actor.CUSTOMER, Actor.GUEST})
# A booking the customer held paid: only its cancellation can cost them anything.
KEPT = frozenset({BookingStatus.CONFIRMED, BookingStatus.PENDING_CONFIRMATION})


def refund_due(
    paid: int,
    ended_as: BookingStatus,
    ended_by: Actor | None,
    ended_at: datetime | None,
    start: datetime,
    free_cancellation_hours: int,
    late_cancellation_refund_percent: int,
    *,
    was_kept: bool = True,
) -> tuple[int, str]:
    """(amount, reason). A customer's own cancellation of a booking they held paid
    (`was_kept`) follows the policy: in full at least `free_cancellation_hours` before the
    start, else the late percentage (rounded down to the minor unit). Declines,
    cancellations by the business or the system, payments that arrived for a booking
    already expired, and payments that arrived after the customer cancelled it unpaid
    come back in full."""
    if ended_as is BookingStatus.CANCELLED and ended_by in CUSTOMERS and not was_kept:
        return paid, "paid after the customer cancelled the unpaid booking"
    if ended_as is BookingStatus.CANCELLED and ended_by in CUSTOMERS and ended_at is not None:
        if start - ended_at >= timedelta(hours=free_cancellation_hours):
            return paid, "cancelled by the customer in time"
        return paid * late_cancellation_refund_percent // 100, "cancelled by the customer late"
    if ended_as is BookingStatus.EXPIRED:
        return paid, "paid after the booking expired"
    if ended_as is BookingStatus.DECLINED:
        return paid, "declined by the business"
    return paid, "cancelled by the business"
