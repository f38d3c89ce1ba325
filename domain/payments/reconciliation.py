"""Healing what a crash, a lost webhook or an outage left half done: a periodic job on
the shared runner (one run at a time across processes), and the outbox consumer
"payments" that settles each booking that ended, once its change committed.

Each run asks the provider about payments still open (at most every CHECK_EVERY each),
makes the intents a crash left unmade, and retries refunds that could not be made.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain import events
from domain.booking import service as booking
from domain.booking.records import BookingStatus
from domain.payments import saga, store
from domain.payments.provider import PaymentProvider, ProviderRefused, ProviderUnavailable
from infra.outbox import Row

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(seconds=30)
# A payment without an intent younger than this is still in its request's hands (the
# intent being made). One with an intent is asked about from the first run on: after a
# crash that lost Stripe's answer (or a lost webhook) the booking confirms within a run.
GRACE = timedelta(seconds=20)
EVENTS_KEPT = timedelta(days=30)  # webhook event ids (Stripe retries for 3 days)
BATCH = 100


async def reconcile(engine: AsyncEngine, provider: PaymentProvider, now: datetime) -> None:
    async with engine.begin() as conn:
        due = await store.open_payments(conn, provider.name, now - CHECK_EVERY, now - GRACE, BATCH)
        if due:
            await store.checked(conn, [p.id for p in due], now)
        refunds = await store.pending_refunds(conn, BATCH)
        await store.forget_events(conn, now - EVENTS_KEPT)
    for payment in due:
        try:
            if payment.intent_id is None:
                async with engine.connect() as conn:
                    found = await booking.booking_by_id(conn, payment.booking_id)
                if found is not None and found.status is BookingStatus.PENDING_PAYMENT:
                    await saga.ensure_intent(engine, provider, payment.booking_id)
            else:
                intent = await provider.retrieve_intent(payment.intent_id)
                await saga.apply(engine, provider, intent, now)
            await saga.settle(engine, provider, payment.booking_id, now)
        except (ProviderUnavailable, ProviderRefused) as error:
            log.warning("payment %s not reconciled yet: %s", payment.id, error)
    for refund in refunds:
        await saga.make_refund(engine, provider, refund)


async def settle_changed(
    engine: AsyncEngine, provider: PaymentProvider, rows: list[Row], now: datetime
) -> None:
    """The outbox consumer's handler: every booking named by a change, settled if it has
    a payment and ended unkept (settle decides; it is idempotent)."""
    changed = events.changed_bookings(rows)
    if not changed:
        return
    async with engine.connect() as conn:
        paid = await store.payments_of_bookings(conn, sorted(changed))
    for booking_id in paid:
        await saga.settle(engine, provider, booking_id, now)
