"""Outgoing e-mail through a durable queue: `enqueue` in the transaction that makes the
change (rolled back, nothing is queued; derived twice, queued once), `dispatch_once`
to send what is due, `dead_letters` and `retry` for what could not be sent.

The dispatcher takes one due message at a time with `FOR UPDATE SKIP LOCKED`, sends it
while holding the row's lock and records the outcome in the same transaction: two
dispatchers never send one message twice, and neither waits for the other. One
transaction per message keeps what a crash can repeat to that one message: the SMTP
server may have accepted it just before the process died, before the commit, and the
next dispatcher sends it again. That is at least once at the SMTP boundary, the
honest limit (SMTP has no idempotency key; the Message-ID stays the same, so a reader's
client may fold the two). The lock is held as long as one send takes (SmtpMailer's
timeout and tries).

Failures: MailUnavailable (the server down, 4xx) schedules a retry with exponential
backoff and full jitter (FIRST_WAIT * 2^attempts capped at MAX_WAIT, a random time up
to that); MailRefused (5xx) is final: DEAD at once. A message is also given up (DEAD)
after MAX_ATTEMPTS tries once it has been queued GIVE_UP_AFTER: with full jitter the
waits are random, so the age, not the count alone, makes a day's outage survivable.
Anything else one message raises (a bug, a message that does not parse) is treated as
transient for that message and logged; the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.notifications.tables import notification_deliveries as deliveries
from infra.ids import uuid7
from infra.mail import Mailer, MailRefused, MailUnavailable

log = logging.getLogger("booking.notifications")

PENDING, SENT, DEAD = "PENDING", "SENT", "DEAD"
EMAIL = "email"
FIRST_WAIT = timedelta(seconds=30)
MAX_WAIT = timedelta(hours=1)
MAX_ATTEMPTS = 12
GIVE_UP_AFTER = timedelta(hours=24)
ERROR_LENGTH = 2000  # of last_error: enough to read, not a whole traceback


@dataclass(slots=True)
class Dispatched:
    """What one `dispatch_once` did."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.dead


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: uuid.UUID
    dedupe_key: str
    recipient: str
    subject: str | None
    attempts: int
    last_error: str | None
    created_at: datetime


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(message, EmailMessage)  # the default policy's message class
    return message


async def enqueue(
    conn: AsyncConnection, dedupe_key: str, recipient: str, message: EmailMessage
) -> bool:
    """Queues `message` for `recipient` in the caller's transaction; False when a
    message with `dedupe_key` is queued already (it is not queued again)."""
    result = await conn.execute(
        pg_insert(deliveries)
        .values(
            id=uuid7(),
            dedupe_key=dedupe_key,
            channel=EMAIL,
            recipient=recipient,
            message=bytes(message),
        )
        .on_conflict_do_nothing(index_elements=[deliveries.c.dedupe_key])
        .returning(deliveries.c.id)
    )
    return result.first() is not None


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """The wait after the `attempts`-th failed try: full jitter, a random time up to
    FIRST_WAIT * 2^(attempts - 1), at most MAX_WAIT."""
    ceiling = min(MAX_WAIT, FIRST_WAIT * (1 << min(attempts - 1, 30)))
    return ceiling * rand()


async def dispatch_once(
    engine: AsyncEngine,
    mailer: Mailer,
    now: datetime,
    batch: int = 20,
    *,
    rand: Callable[[], float] = random.random,
) -> Dispatched:
    """Sends up to `batch` messages due at `now`, one transaction each; what happened to
    them. Messages another dispatcher holds are skipped, not waited for."""
    done = Dispatched()
    async with engine.connect() as conn:
        for _ in range(batch):
            async with conn.begin():
                if not await _dispatch_next(conn, mailer, now, rand, done):
                    break
    return done


async def _dispatch_next(
    conn: AsyncConnection,
    mailer: Mailer,
    now: datetime,
    rand: Callable[[], float],
    done: Dispatched,
) -> bool:
    row = (
        (
            await conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.message,
                    deliveries.c.attempts,
                    deliveries.c.created_at,
                )
                .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
                .order_by(deliveries.c.next_attempt_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return False
    attempts = row["attempts"] + 1
    this = update(deliveries).where(deliveries.c.id == row["id"])
    try:
        await mailer.send(parse(row["message"]))
    except MailRefused as error:
        log.warning("delivery %s refused for good: %s", row["id"], error)
        await conn.execute(this.values(status=DEAD, attempts=attempts, last_error=_text(error)))
        done.dead += 1
        return True
    except Exception as error:  # one message's failure is that message's alone
        if not isinstance(error, MailUnavailable):
            log.exception("delivery %s failed", row["id"])
        if attempts >= MAX_ATTEMPTS and now - row["created_at"] >= GIVE_UP_AFTER:
            log.warning("delivery %s given up after %d tries: %s", row["id"], attempts, error)
            await conn.execute(this.values(status=DEAD, attempts=attempts, last_error=_text(error)))
            done.dead += 1
        else:
            await conn.execute(
                this.values(
                    attempts=attempts,
                    next_attempt_at=now + backoff(attempts, rand),
                    last_error=_text(error),
                )
            )
            done.retrying += 1
        return True
    await conn.execute(this.values(status=SENT, attempts=attempts, sent_at=now, last_error=None))
    done.sent += 1
    return True


def _text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_LENGTH]


async def dead_letters(conn: AsyncConnection, limit: int = 50) -> list[DeadLetter]:
    """Messages given up, newest first."""
    rows = await conn.execute(
        select(deliveries)
        .where(deliveries.c.status == DEAD)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    return [
        DeadLetter(
            id=r["id"],
            dedupe_key=r["dedupe_key"],
            recipient=r["recipient"],
            subject=parse(r["message"])["Subject"],
            attempts=r["attempts"],
            last_error=r["last_error"],
            created_at=r["created_at"],
        )
        for r in rows.mappings()
    ]


async def retry(conn: AsyncConnection, delivery_id: uuid.UUID, now: datetime) -> bool:
    """A dead letter back in the queue, due at `now` with its tries counted afresh;
    False when `delivery_id` is not a dead letter. Its last error stays until the next
    try. A retried letter is given up again after MAX_ATTEMPTS tries."""
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == DEAD)
        .values(status=PENDING, attempts=0, next_attempt_at=now)
        .returning(deliveries.c.id)
    )
    return result.first() is not None
