"""The notifications domain's public API: the app, the worker command and the resolvers
import from here; the work is done in the modules named for it."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import events
from domain.notifications.announcements import announce
from domain.notifications.deliveries import dead_letters, dispatch_once, enqueue, retry
from domain.notifications.dispatcher import Dispatcher
from domain.notifications.scenes import Letterhead, scenes_of
from infra.lifecycle import cancelling
from infra.mail import Mailer
from infra.outbox import Row
from infra.resilience import within

log = logging.getLogger("booking.notifications")

# The outbox consumer's name: its position is kept under it.
CONSUMER = "notifications"
SEND_NOW_SECONDS = 3.0


async def announce_changed(
    engine: AsyncEngine, rows: list[Row], letterhead: Letterhead, now: datetime
) -> int:
    """The outbox consumer "notifications": the messages and webhook events of every
    booking the rows name, queued in one transaction (idempotent: a batch seen twice
    queues nothing new); how many messages were new. A booking whose messages cannot
    be made (a bug, a template) is logged and skipped, not retried forever."""
    changed = sorted(events.changed_bookings(rows))
    if not changed:
        return 0
    queued = 0
    async with engine.begin() as conn:
        scenes = await scenes_of(conn, changed, letterhead)
        for booking_id, scene in scenes.items():
            try:
                async with conn.begin_nested():
                    queued += await announce(conn, scene, letterhead, now)
            except Exception:
                log.exception("booking %s: its notifications could not be made", booking_id)
    return queued


async def queue_letter(conn: AsyncConnection, message: EmailMessage | None) -> uuid.UUID | None:
    """Queues a one-off message (a verification or reset link) in the caller's
    transaction: sent only if the change that made its token commits."""
    if message is None:
        return None
    return await enqueue(conn, f"letter:{message['Message-ID']}", str(message["To"]), message)


async def send_now(engine: AsyncEngine, mailer: Mailer, delivery_id: uuid.UUID | None) -> None:
    """Sends a queued message at once, for a request whose answer says it is on its way;
    within SEND_NOW_SECONDS, and what is not sent by then (the mail server slow or down)
    is left to the dispatcher's retries. Never raises: the change has committed."""
    if delivery_id is None:
        return
    try:
        async with within(SEND_NOW_SECONDS):
            await dispatch_once(engine, mailer, datetime.now(UTC), 1, only=[delivery_id])
    except Exception:  # the message waits in its table
        if cancelling():
            raise
        log.warning("message %s not sent yet; the dispatcher retries it", delivery_id)


__all__ = [
    "CONSUMER",
    "Dispatcher",
    "Letterhead",
    "announce_changed",
    "dead_letters",
    "enqueue",
    "queue_letter",
    "retry",
    "send_now",
]
