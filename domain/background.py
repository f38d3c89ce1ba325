"""The passing of time, without any request arriving: past bookings complete, expired
holds are tidied, old idempotency keys forgotten. Periodic jobs on the shared runner
(infra/jobs.py): deferred once per tick whatever the number of processes, one at a time
(`lock`), each step one idempotent statement."""

from __future__ import annotations

from datetime import UTC, datetime

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.booking import service as booking
from infra.jobs import engine_of

SWEEP_EVERY = "* * * * * */15"  # cron with seconds: every 15 s


async def sweep(engine: AsyncEngine, now: datetime) -> None:
    await booking.complete_past_bookings(engine, now)
    await booking.clear_expired_holds(engine, now)
    await booking.forget_old_idempotency_keys(engine, now)


async def sweep_job(context: procrastinate.JobContext, timestamp: int) -> None:
    await sweep(engine_of(context), datetime.now(UTC))


def register(app: procrastinate.App) -> None:
    task = app.task(name="booking.sweep", pass_context=True, lock="booking.sweep")
    app.periodic(cron=SWEEP_EVERY)(task(sweep_job))
