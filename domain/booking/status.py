"""The booking status machine, in one place: every allowed transition and who may
make it. Anything else is NOT_CANCELLABLE (wrong state) or FORBIDDEN (wrong actor)."""

from __future__ import annotations

from domain.booking.records import ACTIVE, Actor, BookingStatus
from domain.errors import DomainError, ErrorCode

S = BookingStatus
A = Actor

# (from, to) -> who may move a booking along that edge.
TRANSITIONS: dict[tuple[BookingStatus, BookingStatus], frozenset[Actor]] = {
    (S.PENDING_CONFIRMATION, S.CONFIRMED): frozenset({A.STAFF, A.ADMIN}),
    (S.PENDING_CONFIRMATION, S.DECLINED): frozenset({A.STAFF, A.ADMIN}),
    # Paid (domain/booking/unpaid.py): confirmed, or waiting for a yes when the service
    # wants one; a payment that cannot begin cancels.
    (S.PENDING_PAYMENT, S.CONFIRMED): frozenset({A.PAYMENT}),
    (S.PENDING_PAYMENT, S.PENDING_CONFIRMATION): frozenset({A.PAYMENT}),
    (S.PENDING_PAYMENT, S.EXPIRED): frozenset({A.SYSTEM}),
    (S.CONFIRMED, S.COMPLETED): frozenset({A.SYSTEM}),
    (S.CONFIRMED, S.NO_SHOW): frozenset({A.STAFF, A.ADMIN}),
    **{(active, S.CANCELLED): frozenset({A.CUSTOMER, A.GUEST, A.ADMIN}) for active in ACTIVE},
}
TRANSITIONS[(S.PENDING_PAYMENT, S.CANCELLED)] |= {A.PAYMENT}

# Moving an active booking to another time keeps its status.
RESCHEDULERS = frozenset({A.CUSTOMER, A.GUEST, A.ADMIN})


# When someone is several of these to one booking, the change is recorded as the first.
PREFERENCE = (A.CUSTOMER, A.GUEST, A.STAFF, A.ADMIN, A.PAYMENT, A.SYSTEM)


def _pick(roles: frozenset[Actor], allowed: frozenset[Actor], message: str) -> Actor:
    for role in PREFERENCE:
        if role in roles and role in allowed:
            return role
    raise DomainError(ErrorCode.FORBIDDEN, message)


def check_transition(
    current: BookingStatus, target: BookingStatus, roles: frozenset[Actor]
) -> Actor:
    """The actor the change is made as, or the error that refuses it."""
    allowed = TRANSITIONS.get((current, target))
    if allowed is None:
        raise DomainError(
            ErrorCode.NOT_CANCELLABLE,
            f"A {current.value.lower().replace('_', ' ')} booking cannot become "
            f"{target.value.lower().replace('_', ' ')}.",
        )
    return _pick(roles, allowed, "You may not make this change to the booking.")


def check_reschedule(current: BookingStatus, roles: frozenset[Actor]) -> Actor:
    if current not in ACTIVE:
        raise DomainError(
            ErrorCode.NOT_CANCELLABLE,
            f"A {current.value.lower().replace('_', ' ')} booking cannot be moved.",
        )
    return _pick(roles, RESCHEDULERS, "You may not move this booking.")
