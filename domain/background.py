"""The passing of time, without any request arriving: past bookings complete, unpaid
ones expire, expired holds are tidied, old idempotency keys and expired sign-in codes
forgotten, payments are reconciled with the provider, and delivered notifications are
forgotten after 90 days. Periodic jobs on the shared runner (infra/jobs.py): deferred
once per tick whatever the number of processes, one at a time (`lock`), each step one
idempotent statement."""

from __future__ import annotations

from datetime import UTC, datetime

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.booking import service as booking
from domain.notifications import maintenance as notifications
from domain.payments import service as payments
from domain.users import service as users
from infra.jobs import engine_of

SWEEP_EVERY = "* * * * * */15"  # cron with seconds: every 15 s
RECONCILE_EVERY = "* * * * * */20"
FORGET_EVERY = "7 * * * *"  # hourly


async def sweep(engine: AsyncEngine, now: datetime) -> None:
    await booking.complete_past_bookings(engine, now)
    # Their intents are cancelled by the payments consumer, which hears of each change.
    await booking.expire_unpaid(engine, now)
    await booking.clear_expired_holds(engine, now)
    await booking.forget_old_idempotency_keys(engine, now)
    await users.forget_expired(engine, now)


async def sweep_job(context: procrastinate.JobContext, timestamp: int) -> None:
    await sweep(engine_of(context), datetime.now(UTC))


async def reconcile_job(context: procrastinate.JobContext, timestamp: int) -> None:
    provider: payments.PaymentProvider = context.additional_context["payments"]
    await payments.reconcile(engine_of(context), provider, datetime.now(UTC))


async def forget_delivered_job(context: procrastinate.JobContext, timestamp: int) -> None:
    await notifications.forget_delivered(engine_of(context), datetime.now(UTC))


def register(app: procrastinate.App) -> None:
    task = app.task(name="booking.sweep", pass_context=True, lock="booking.sweep")
    app.periodic(cron=SWEEP_EVERY)(task(sweep_job))
    task = app.task(name="payments.reconcile", pass_context=True, lock="payments.reconcile")
    app.periodic(cron=RECONCILE_EVERY)(task(reconcile_job))
    task = app.task(name="notifications.forget", pass_context=True, lock="notifications.forget")
    app.periodic(cron=FORGET_EVERY)(task(forget_delivered_job))
