"""The payment saga, one explicit state machine; every step is committed before the next
one calls out, so a crash anywhere leaves rows the reconciliation can finish.

    createBooking (paid)  -> booking PENDING_PAYMENT + payment REQUIRES_PAYMENT, one commit
    provider intent       -> intent id and client secret stored; or, when the provider
                             cannot be reached, the booking is cancelled and its slot freed
    success seen by us    -> payment SUCCEEDED and, in the same commit, the booking
    (webhook or            CONFIRMED (PENDING_CONFIRMATION when the service wants a yes)
     confirmPayment)         if its deadline has not passed, else EXPIRED
    booking ended unkept  -> settle(): an open intent is cancelled; a payment that arrived
                             is refunded per the policy (refunds.payment_id is unique)

A payment's status only moves forward (`moves`): an old failure after a success, or a
duplicate, changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import events
from domain.booking import service as booking
from domain.booking.records import ACTIVE, Booking, BookingStatus
from domain.booking.slot_lock import SlotLock
from domain.errors import DomainError, ErrorCode
from domain.payments import policy, store
from domain.payments.provider import (
    Intent,
    PaymentProvider,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
)
from domain.payments.records import OPEN, PAID, Payment, PaymentStatus, Refund
from domain.users import service as users

log = logging.getLogger(__name__)

UNAVAILABLE = "Payments are unavailable right now, so nothing was booked. Please try again."
ENDED = frozenset({BookingStatus.COMPLETED, BookingStatus.NO_SHOW})  # kept: nothing owed


def moves(payment: Payment, seen: PaymentStatus, seen_at: datetime) -> bool:
    """Whether what the provider says now moves the payment: never backwards."""
    current = payment.status
    if seen is current or current in PAID:
        return False  # refunds change it through their amounts, not through intents
    if current is PaymentStatus.CANCELED:
        return seen is PaymentStatus.SUCCEEDED  # a success that beat our cancellation
    if seen in (PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED):
        return True
    # Between the open states (waiting, processing, failed), only newer news counts.
    return payment.state_at is None or seen_at >= payment.state_at


async def book(
    engine: AsyncEngine,
    provider: PaymentProvider,
    lock: SlotLock,
    rules: booking.Policy,
    viewer: uuid.UUID | None,
    request: booking.BookingRequest,
    now: datetime,
) -> booking.BookingResult:
    """createBooking: the booking (with its payment row when paid), then the provider's
    intent. Without an intent there is no way to pay, so a new booking whose intent
    cannot be made is cancelled at once: no reservation is left behind."""

    async def open_payment(conn: AsyncConnection, made: Booking) -> None:
        await store.open_payment(
            conn, made.id, made.organization_id, made.price_amount, made.currency, provider.name
        )

    result = await booking.create_booking(
        engine, lock, rules, viewer, request, now, on_unpaid=open_payment
    )
    if result.booking.status is not BookingStatus.PENDING_PAYMENT:
        return result
    try:
        await ensure_intent(engine, provider, result.booking.id)
    except (ProviderUnavailable, ProviderRefused) as error:
        log.warning("no payment intent for booking %s: %s", result.booking.id, error)
        if result.service is not None:  # made by this request, not a replay
            await booking.abandon_unpaid(
                engine, result.booking.id, "The payment provider could not be reached."
            )
            await settle(engine, provider, result.booking.id, now)  # its payment: CANCELED
        raise DomainError(ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE, UNAVAILABLE) from error
    return result


async def ensure_intent(
    engine: AsyncEngine, provider: PaymentProvider, booking_id: uuid.UUID
) -> Payment:
    """The booking's payment with its provider intent, made now if it has none yet. The
    idempotency key is the payment's: asking again (a replay, a reconciliation after a
    crash) finds the same intent."""
    async with engine.connect() as conn:
        payment = await store.payment_of_booking(conn, booking_id)
    assert payment is not None
    if payment.intent_id is not None:
        return payment
    intent = await provider.create_intent(
        amount=payment.amount,
        currency=payment.currency,
        idempotency_key=f"payment-{payment.id}",
        metadata={"booking_id": str(booking_id), "payment_id": str(payment.id)},
    )
    async with engine.begin() as conn:
        await store.attach_intent(conn, payment.id, intent)
        found = await store.payment_of_booking(conn, booking_id)
    assert found is not None
    return found


async def _record_change(conn: AsyncConnection, payment: Payment) -> None:
    """The payment is part of the booking that subscribers watch: its change is one."""
    await events.record(conn, events.BookingChanged(payment.booking_id, payment.organization_id))


async def _settle_if_ended(
    engine: AsyncEngine, provider: PaymentProvider, moved: Booking | None, now: datetime
) -> None:
    if moved is not None and moved.status not in ACTIVE:
        await settle(engine, provider, moved.id, now)


async def _apply_in(
    conn: AsyncConnection,
    payment: Payment,
    status: PaymentStatus,
    error: str | None,
    at: datetime,
    now: datetime,
) -> Booking | None:
    """Moves the payment (and on success its booking) in `conn`'s transaction; the
    booking as it now stands, or None when nothing moved."""
    if not moves(payment, status, at):
        return None
    await store.set_state(conn, payment.id, status, error, at)
    paid: Booking | None
    if status is PaymentStatus.SUCCEEDED:
        paid = await booking.mark_paid(conn, payment.booking_id, now)
    else:
        paid = await booking.booking_by_id(conn, payment.booking_id)
    assert paid is not None
    await _record_change(conn, payment)
    return paid


async def apply(
    engine: AsyncEngine, provider: PaymentProvider, intent: Intent, now: datetime
) -> Booking | None:
    """What the provider's API said about an intent, applied; then the booking settled if
    it ended unkept (a success after the deadline is refunded at once)."""
    async with engine.begin() as conn:
        payment = await store.payment_by_intent(conn, intent.id)
        if payment is None:
            return None
        moved = await _apply_in(conn, payment, intent.status, intent.error, intent.at, now)
    await _settle_if_ended(engine, provider, moved, now)
    return moved


async def apply_event(
    engine: AsyncEngine, provider: PaymentProvider, event: ProviderEvent, now: datetime
) -> str:
    """A verified webhook event, applied once: what became of it, for the log."""
    async with engine.begin() as conn:
        if not await store.first_sight_of_event(conn, event.id, event.type):
            return "duplicate"
        payment = await store.payment_by_intent(conn, event.intent_id) if event.intent_id else None
        if payment is None:
            return "not ours"
        moved: Booking | None = None
        if event.intent is not None:
            intent = event.intent
            moved = await _apply_in(conn, payment, intent.status, intent.error, intent.at, now)
        elif event.amount_refunded is not None:
            if await store.set_refunded(conn, payment, event.amount_refunded):
                await _record_change(conn, payment)
                return "refund noted"
            return "no change"
    if moved is None:
        return "no change"
    await _settle_if_ended(engine, provider, moved, now)
    return (
        f"payment {event.intent.status.value if event.intent else ''}, booking {moved.status.value}"
    )


async def confirm_payment(
    engine: AsyncEngine,
    provider: PaymentProvider,
    viewer: uuid.UUID | None,
    booking_id: uuid.UUID | None,
    manage_token: str | None,
    now: datetime,
) -> Booking:
    """confirmPayment: the server asks the provider itself; the client's word is never
    enough. With the offline provider this is where the test payment is made."""
    async with engine.connect() as conn:
        found = (
            await booking.readable_booking(conn, booking_id, viewer, manage_token)
            if booking_id
            else None
        )
        payment = await store.payment_of_booking(conn, booking_id) if found and booking_id else None
    if found is None or booking_id is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "bookingId")
    if payment is None:
        raise DomainError(ErrorCode.INVALID_INPUT, "This booking has nothing to pay.", "bookingId")
    if payment.status in OPEN and found.status is BookingStatus.PENDING_PAYMENT:
        try:
            payment = await ensure_intent(engine, provider, booking_id)
            assert payment.intent_id is not None
            await provider.pay_in_test_mode(payment.intent_id)
            intent = await provider.retrieve_intent(payment.intent_id)
        except (ProviderUnavailable, ProviderRefused) as error:
            raise DomainError(
                ErrorCode.PAYMENT_PROVIDER_UNAVAILABLE,
                "The payment provider could not be reached; your booking is kept until it"
                " expires. Please try again.",
            ) from error
        await apply(engine, provider, intent, now)
        if intent.status is PaymentStatus.FAILED:
            raise DomainError(ErrorCode.PAYMENT_FAILED, intent.error or "The payment failed.")
    async with engine.connect() as conn:
        current = await booking.booking_by_id(conn, booking_id)
    assert current is not None
    return current


async def settle(
    engine: AsyncEngine, provider: PaymentProvider, booking_id: uuid.UUID, now: datetime
) -> None:
    """The compensation of a booking that ended unkept (cancelled, declined, expired):
    its open intent cancelled, or what was paid refunded per the policy. Idempotent: the
    outbox consumer, the reconciliation and the request paths may all call it."""
    refund: Refund | None = None
    async with engine.begin() as conn:
        payment = await store.payment_of_booking(conn, booking_id, for_update=True)
        ended = await booking.booking_by_id(conn, booking_id) if payment else None
        if payment is None or ended is None or ended.status in ACTIVE | ENDED:
            return
        if payment.provider != provider.name:
            return  # never act on another provider's payment (a changed configuration)
        if payment.status in PAID:
            refund = await store.refund_of(conn, payment.id) or await _decide_refund(
                conn, payment, ended
            )
        elif payment.status in OPEN and payment.intent_id is None:
            await store.set_state(conn, payment.id, PaymentStatus.CANCELED, None, now)
            return
    if payment.status in OPEN:
        await _cancel_intent(engine, provider, payment, now)
    elif refund is not None and refund.status == "PENDING":
        await make_refund(engine, provider, refund)


async def _decide_refund(conn: AsyncConnection, payment: Payment, ended: Booking) -> Refund | None:
    changes = (await booking.history_of(conn, [ended.id]))[ended.id]
    last = changes[-1] if changes else None
    orgs = await users.organizations_by_id(conn, [payment.organization_id])  # fresh policy
    org = orgs[payment.organization_id]
    amount, reason = policy.refund_due(
        payment.amount,
        ended.status,
        last.actor if last else None,
        last.at if last else None,
        ended.start,
        org.free_cancellation_hours,
        org.late_cancellation_refund_percent,
        was_kept=any(c.status in policy.KEPT for c in changes[:-1]),
    )
    return await store.decide_refund(conn, payment.id, amount, reason)


async def _cancel_intent(
    engine: AsyncEngine, provider: PaymentProvider, payment: Payment, now: datetime
) -> None:
    assert payment.intent_id is not None
    try:
        intent = await provider.cancel_intent(
            payment.intent_id, idempotency_key=f"cancel-{payment.id}"
        )
    except ProviderRefused:
        # Stripe refuses to cancel what already succeeded: that success is applied
        # (and, the booking being over, refunded).
        try:
            intent = await provider.retrieve_intent(payment.intent_id)
        except (ProviderUnavailable, ProviderRefused) as error:
            log.warning("payment %s: intent not checked: %s", payment.id, error)
            return
    except ProviderUnavailable as error:
        log.warning("payment %s: intent not cancelled yet: %s", payment.id, error)
        return  # the reconciliation tries again
    await apply(engine, provider, intent, now)


async def make_refund(engine: AsyncEngine, provider: PaymentProvider, refund: Refund) -> None:
    """Asks the provider for the refund decided; a failure leaves it PENDING for the
    reconciliation to retry (the idempotency key makes it one refund whatever happens)."""
    async with engine.connect() as conn:
        payment = await store.payment_by_id(conn, refund.payment_id)
    assert payment.intent_id is not None
    try:
        provider_ref = await provider.refund(
            payment.intent_id,
            refund.amount,
            idempotency_key=f"refund-{refund.id}",
            metadata={"booking_id": str(payment.booking_id), "payment_id": str(payment.id)},
        )
    except (ProviderUnavailable, ProviderRefused) as error:
        log.warning("refund %s not made yet: %s", refund.id, error)
        async with engine.begin() as conn:
            await store.refund_tried(conn, refund.id)
        return
    async with engine.begin() as conn:
        if await store.refund_done(conn, refund.id, provider_ref):
            locked = await store.payment_of_booking(conn, payment.booking_id, for_update=True)
            assert locked is not None
            await store.set_refunded(conn, locked, refund.amount)  # one refund per payment
            await _record_change(conn, payment)
