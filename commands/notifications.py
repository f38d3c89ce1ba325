"""`python -m commands.notifications worker`: a process that only derives and sends
notifications (booking e-mails, reminders, webhooks), for deployments that run the API
servers with NOTIFICATIONS_WORKER=external. Run as many as you like: they share the
work without sending anything twice. Configured by the same environment variables as
the server; stops on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta

from domain.notifications.scenes import Letterhead
from domain.notifications.webhook_sender import webhook_sender_from_settings
from domain.notifications.worker import NotificationWorker
from domain.users.server_keys import manage_link_key
from domain.users.sms import channel_from_settings
from infra.database import create_engine, libpq_url
from infra.mailers import mailer_from_settings
from infra.settings import Settings

log = logging.getLogger("booking.notifications")

USAGE = "usage: python -m commands.notifications worker"


async def work(settings: Settings) -> None:
    dsn = libpq_url(settings)
    engine = create_engine(dsn, pool_size=4)
    sms = channel_from_settings(settings)
    webhook_sender = webhook_sender_from_settings(settings)
    try:
        letterhead = Letterhead(
            settings.mail_from, settings.app_url, await manage_link_key(engine, settings.jwt_secret)
        )
        worker = NotificationWorker(
            dsn,
            engine,
            mailer_from_settings(settings),
            webhook_sender,
            letterhead,
            retry_first_wait=timedelta(seconds=settings.notification_retry_seconds),
            sms=sms,
        )
        task = asyncio.create_task(worker.run())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        log.info("notification worker running")
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("notification worker stopped")
    finally:
        await webhook_sender.aclose()
        await sms.close()
        await engine.dispose()


def main(argv: list[str]) -> None:
    if argv != ["worker"]:
        sys.exit(USAGE)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(work(Settings.from_env()))


if __name__ == "__main__":
    main(sys.argv[1:])
