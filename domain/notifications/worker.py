"""The notification worker: the outbox consumer that derives messages and webhook events
from committed booking changes, and the dispatcher that sends them. Run by every server
process (NOTIFICATIONS_WORKER=in-process) or by `python -m commands.notifications worker`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.notifications.deliveries import FIRST_WAIT
from domain.notifications.dispatcher import Dispatcher
from domain.notifications.scenes import Letterhead
from domain.notifications.service import CONSUMER, announce_changed
from domain.notifications.webhook_sender import WebhookSender
from domain.users.sms import SmsChannel
from infra.clock import SYSTEM_CLOCK, Clock
from infra.mail import Mailer
from infra.outbox import Consumer, Row
from infra.relay import OutboxReader

GATHER = 0.25  # seconds


class NotificationWorker:
    def __init__(
        self,
        dsn: str,
        engine: AsyncEngine,
        mailer: Mailer,
        webhook_sender: WebhookSender,
        letterhead: Letterhead,
        clock: Clock = SYSTEM_CLOCK,
        retry_first_wait: timedelta = FIRST_WAIT,
        sms: SmsChannel | None = None,
    ) -> None:
        self.engine = engine
        self.letterhead = letterhead
        self.clock = clock
        self.dispatcher = Dispatcher(
            engine, mailer, webhook_sender, letterhead, clock, retry_first_wait, sms
        )
        consumer = Consumer(CONSUMER, self._announce, batch=100, lease_seconds=60.0)
        # E-mail need not leave within milliseconds: a quarter of a second's commits per
        # batch makes one set of reads serve many bookings when they come fast.
        self.reader = OutboxReader(dsn, [consumer], gather=GATHER)

    async def _announce(self, rows: list[Row]) -> None:
        if await announce_changed(self.engine, rows, self.letterhead, self.clock.now()):
            self.dispatcher.wake()  # sent now, not at the next look

    async def run(self) -> None:
        """Consumes and dispatches until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.reader.run(), name="notifications-consumer")
            group.create_task(self.dispatcher.run(), name="notifications-dispatcher")
