"""The dispatcher: sends what is due (e-mails, then webhook deliveries) and queues
reminders as their time comes. It runs in every server process by default
(NOTIFICATIONS_WORKER=in-process) or in processes of its own
(`python -m commands.notifications worker`); any number of them share the work, since
each message is claimed FOR UPDATE SKIP LOCKED.

Idle, it looks for due work every IDLE seconds, or at once when woken (this process
queued something: `wake`). A failure (PostgreSQL away) is logged once and retried with
jittered backoff; the messages wait in their table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.notifications import deliveries, reminders
from domain.notifications.scenes import Letterhead
from domain.notifications.webhook_sender import WebhookSender, dispatch_webhooks_once
from domain.users.sms import SmsChannel
from infra.clock import SYSTEM_CLOCK, Clock
from infra.lifecycle import cancelling, pause
from infra.mail import Mailer
from infra.resilience import retrying, within

log = logging.getLogger("booking.notifications")

IDLE = 1.0  # seconds between looks for due work when nothing wakes it
BATCH = 20  # messages per look, before webhooks and reminders get their turn


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        mailer: Mailer,
        webhook_sender: WebhookSender,
        letterhead: Letterhead,
        clock: Clock = SYSTEM_CLOCK,
        retry_first_wait: timedelta = deliveries.FIRST_WAIT,
        sms: SmsChannel | None = None,
    ) -> None:
        self.engine = engine
        self.sms = sms
        self.retry_first_wait = retry_first_wait
        self.mailer = mailer
        self.webhook_sender = webhook_sender
        self.letterhead = letterhead
        self.clock = clock
        self._next_scan: datetime | None = None
        self._failing = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def step(self) -> int:
        """One look: reminders queued if their scan is due, then a batch of each kind
        of delivery; how many messages and attempts it handled, BATCH or more when a
        kind filled its batch (more may be waiting)."""
        now = self.clock.now()
        if self._next_scan is None or now >= self._next_scan:
            await reminders.queue_due(self.engine, self.letterhead, now)
            self._next_scan = now + reminders.SCAN_EVERY
        mail = await deliveries.dispatch_once(
            self.engine,
            self.mailer,
            now,
            BATCH,
            guard=reminders.still_due,
            first_wait=self.retry_first_wait,
            sms=self.sms,
        )
        hooks = await dispatch_webhooks_once(
            self.engine, self.webhook_sender, now, BATCH, mail_from=self.letterhead.sender
        )
        if mail.total >= BATCH or hooks >= BATCH:
            return max(mail.total + hooks, BATCH)
        return mail.total + hooks

    async def run(self) -> None:
        """Dispatches until cancelled."""
        async for attempt in retrying(
            on=(Exception,), attempts=None, first_wait=0.5, max_wait=10.0, sleep=pause
        ):
            with attempt:
                await self._loop()
        raise AssertionError("retrying without a limit ended")  # never: it re-raises

    async def _loop(self) -> None:
        try:
            while True:
                self._wake.clear()
                handled = await self.step()
                if self._failing:
                    log.warning("notification dispatcher resumed")
                    self._failing = False
                if handled >= BATCH:
                    continue  # more may be waiting; else what this look missed wakes it
                with contextlib.suppress(TimeoutError):
                    async with within(IDLE):
                        await self._wake.wait()
        except Exception:
            if cancelling():
                raise
            if not self._failing:
                log.warning("notification dispatcher failed; retrying", exc_info=True)
            self._failing = True
            raise
