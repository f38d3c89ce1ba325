"""One runner for background work: procrastinate, whose queue lives in PostgreSQL, so
nothing new must run. Periodic jobs (sweeps, expiries, reconciliations) are deferred
once per tick whatever the number of processes, queued jobs are retried, and every
process runs a worker that takes its share.

Tasks are declared by the layer that knows the work (domain/background.py for bookings,
`register` below for the outbox) as a function that registers them on an app: every
runner gets task objects of its own (procrastinate's blueprints rename their tasks when
added, so one blueprint serves one app only). Tasks get the engine through the job
context.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from procrastinate.psycopg_connector import PsycopgConnector
from sqlalchemy.ext.asyncio import AsyncEngine

from infra import outbox
from infra.database import driver
from infra.lifecycle import stop_task

OUTBOX_KEPT = timedelta(days=7)

Registration = Callable[[procrastinate.App], None]

# True in the worker and every job it runs: logs and the tests' statement counts tell
# background work from a request's.
in_background: contextvars.ContextVar[bool] = contextvars.ContextVar("in_background", default=False)


def engine_of(context: procrastinate.JobContext) -> AsyncEngine:
    engine: AsyncEngine = context.additional_context["engine"]
    return engine


async def forget_outbox_rows(context: procrastinate.JobContext, timestamp: int) -> None:
    """Rows every consumer has passed, and any past the age bound."""
    async with engine_of(context).connect() as conn:
        await outbox.forget(await driver(conn), datetime.now(UTC) - OUTBOX_KEPT)
        await conn.commit()


def register(app: procrastinate.App) -> None:
    task = app.task(name="outbox.forget", pass_context=True, lock="outbox.forget")
    app.periodic(cron="*/10 * * * *")(task(forget_outbox_rows))


def in_background_task(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task for background work (`in_background` set in it and what it starts)."""
    context = contextvars.copy_context()
    context.run(in_background.set, True)
    return asyncio.create_task(work, name=name, context=context)


class JobRunner:
    """The procrastinate app and this process's worker."""

    def __init__(self, dsn: str, registrations: Sequence[Registration]) -> None:
        # The queue's own small pool (psycopg) for fetching and finishing jobs; the
        # jobs themselves work through the app's engine, from the job context.
        self.app = procrastinate.App(
            connector=PsycopgConnector(conninfo=dsn, min_size=1, max_size=2)
        )
        for registration in (register, *registrations):
            registration(self.app)
        self._worker: asyncio.Task[None] | None = None

    async def start(self, context: dict[str, Any]) -> None:
        await self.app.open_async()
        self._worker = in_background_task(
            self.app.run_worker_async(
                name="booking-api",
                concurrency=2,
                install_signal_handlers=False,  # the app's lifespan stops it
                additional_context=context,
                delete_jobs="successful",
                shutdown_graceful_timeout=1.0,
            ),
            "job-worker",
        )

    async def stop(self) -> None:
        await stop_task(self._worker)
        await self.app.close_async()
