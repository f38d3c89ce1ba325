"""Notifications at scale, end to end: an API process with NOTIFICATIONS_WORKER=external
and two `python -m commands.notifications worker` processes on one database, sending to
a real SMTP server on loopback (aiosmtpd). Every booking's confirmation arrives once,
with its invite; with the SMTP server down, cancellations wait and arrive exactly once
after it is back."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import select

from domain.notifications.tables import notification_deliveries
from infra.database import create_engine
from tests.booking_api import CANCEL, create
from tests.business import Business, Person, create_business, sign_up
from tests.conftest import GraphQLClient, free_port
from tests.notification_helpers import event_of, invite_of
from tests.processes import (
    JWT_SECRET,
    REDIS_PREFIX,
    Apps,
    _spawn,
    app_environment,
    own_database,
    running_apps,
    stop_process,
)
from tests.test_notification_deliveries import Inbox, smtp_server
from tests.test_notifications import BERLIN, at, next_monday

CUSTOMERS = 12


class Fleet:
    def __init__(self, apps: Apps, database_url: str, smtp_port: int, workers: list[str]) -> None:
        self.apps = apps
        self.database_url = database_url
        self.smtp_port = smtp_port
        self.worker_logs = workers


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fleet() -> AsyncIterator[Fleet]:
    port = free_port()
    settings = {
        "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "SMTP_TIMEOUT_SECONDS": "2",
        "NOTIFICATIONS_WORKER": "external",
        "NOTIFICATION_RETRY_SECONDS": "0.5",
    }
    async with (
        own_database() as url,
        running_apps(url, count=1, redis_url=None, settings=settings) as apps,
    ):
        env = app_environment(url, None, REDIS_PREFIX, JWT_SECRET) | settings
        with tempfile.TemporaryDirectory(prefix="notification-workers-") as logs:
            paths = [Path(logs) / f"worker-{i}.log" for i in range(2)]
            args = [sys.executable, "-m", "commands.notifications", "worker"]
            workers = [_spawn(args, path, env) for path in paths]
            try:
                yield Fleet(apps, url, port, [str(p) for p in paths])
            finally:
                for worker in workers:
                    await asyncio.to_thread(stop_process, worker)
                for path in paths:
                    text = path.read_text()
                    assert "Traceback" not in text, text


async def until(inbox: Inbox, subject_start: str, count: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while sum(1 for m in inbox.received if str(m["Subject"]).startswith(subject_start)) < count:
        if time.monotonic() > deadline:
            subjects = Counter(str(m["Subject"]).split(":")[0] for m in inbox.received)
            raise AssertionError(f"{count} x {subject_start!r}; received {subjects}")
        await asyncio.sleep(0.05)


async def book_all(gql: GraphQLClient, biz: Business, people: list[Person]) -> list[str]:
    day = next_monday()
    ids = []
    for i, person in enumerate(people):
        start = at(day, 9 + i // 2, BERLIN, 30 * (i % 2))
        made = await create(gql, person.token, serviceId=biz.service_id, start=start.isoformat())
        assert made["errors"] == [], made
        ids.append(made["booking"]["id"])
    return ids


async def test_workers_send_each_message_once_and_catch_up_after_the_mail_server_was_down(
    fleet: Fleet,
) -> None:
    with smtp_server(fleet.smtp_port) as inbox:
        async with fleet.apps.clients() as (gql,):
            biz = await create_business(gql)
            people = [await sign_up(gql, name=f"Customer {i}") for i in range(CUSTOMERS)]
            # Sent by the API process itself, at once (send_now), over SMTP.
            await until(inbox, "Confirm your e-mail address", CUSTOMERS + 1)
            bookings = await book_all(gql, biz, people)
            await until(inbox, "Booking confirmed", CUSTOMERS)
    confirmations = [m for m in inbox.received if str(m["Subject"]).startswith("Booking confirmed")]
    assert sorted(str(m["To"]) for m in confirmations) == sorted(p.email for p in people)
    assert {event_of(invite_of(m))["sequence"] for m in confirmations} == {"0"}

    # The mail server away: the cancellations' messages wait and are tried again.
    async with fleet.apps.clients() as (gql,):
        for person, booking_id in zip(people, bookings, strict=True):
            done = await gql.data(CANCEL, {"input": {"bookingId": booking_id}}, person.token)
            assert done["cancelBooking"]["errors"] == []
    engine = create_engine(fleet.database_url, pool_size=1)
    try:
        deadline = time.monotonic() + 30
        while True:
            async with engine.connect() as conn:
                found = await conn.execute(
                    select(notification_deliveries.c.attempts).where(
                        notification_deliveries.c.dedupe_key.like("booking:%:1:booking_cancelled"),
                        notification_deliveries.c.status == "PENDING",
                    )
                )
                attempts = list(found.scalars())
            # All queued, none sent, and the server's absence noticed (the circuit then
            # opens: the rest wait untried).
            if len(attempts) == CUSTOMERS and max(attempts) > 0:
                break
            assert time.monotonic() < deadline, f"queued while down: {attempts}"
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    with smtp_server(fleet.smtp_port) as back:
        await until(back, "Booking cancelled", CUSTOMERS, within=60)
        await asyncio.sleep(1.0)  # time for any duplicate to show up
    cancellations = [m for m in back.received if str(m["Subject"]).startswith("Booking cancelled")]
    assert Counter(str(m["To"]) for m in cancellations) == Counter(p.email for p in people)
    assert {event_of(invite_of(m))["method"] for m in cancellations} == {"CANCEL"}
    everything = Counter((str(m["To"]), str(m["Subject"])) for m in inbox.received + back.received)
    assert max(everything.values()) == 1, everything
