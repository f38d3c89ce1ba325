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
to that); MailRefused (5xx) is final: DEAD at once. While the mail server's circuit is
open (the mailer refuses to try), nothing is tried and no try is counted: the message
waits CIRCUIT_WAIT and that channel's others wait for the next batch, so an outage does
not use up a message's tries (and texts go on while e-mail cannot, or the other way).
A message is also given up (DEAD) after MAX_ATTEMPTS tries once it has been queued
GIVE_UP_AFTER: with full jitter the waits are random, so the age, not the count alone,
makes a day's outage survivable.
Anything else one message raises (a bug, a message that does not parse) is treated as
transient for that message and logged; the rest of the batch goes on.
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import default as default_policy

from sqlalchemy import RowMapping, Update, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.notifications.tables import notification_deliveries as deliveries
from domain.users.sms import SmsChannel, SmsRejected, SmsUnavailable
from infra.ids import uuid7
from infra.mail import Mailer, MailRefused, MailUnavailable, envelope_sender
from infra.resilience import BreakerOpen

log = logging.getLogger("booking.notifications")

PENDING, SENT, DEAD, DROPPED = "PENDING", "SENT", "DEAD", "DROPPED"
EMAIL, SMS = "email", "sms"
FIRST_WAIT = timedelta(seconds=30)
MAX_WAIT = timedelta(hours=1)
MAX_ATTEMPTS = 12
GIVE_UP_AFTER = timedelta(hours=24)
# While the mail server's circuit is open, how long a message waits before it is looked
# at again (the circuit lets one trial through after its reset timeout).
CIRCUIT_WAIT = timedelta(seconds=5)
ERROR_LENGTH = 2000  # of last_error: enough to read, not a whole traceback


@dataclass(slots=True)
class Dispatched:
    """What one `dispatch_once` did."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0
    dropped: int = 0  # reminders whose booking changed or whose reader opted out
    postponed: int = 0  # not tried: the mail server's circuit was open (not in total)

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.dead + self.dropped


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: uuid.UUID
    dedupe_key: str
    recipient: str
    subject: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    organization_id: uuid.UUID | None = None
    channel: str = EMAIL


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(message, EmailMessage)  # the default policy's message class
    return message


@dataclass(frozen=True, slots=True)
class ReminderGuard:
    """What must still hold when a reminder leaves: its booking confirmed at this start,
    and (user_id) the account still wanting reminders on the message's channel."""

    booking_id: uuid.UUID
    start: datetime
    user_id: uuid.UUID | None = None
    channel: str = EMAIL  # whose preference counts: e-mail or SMS reminders


# Checks a guard inside the sending transaction (reminders.still_due), keeping what it
# read from changing until that transaction ends.
Guard = Callable[[AsyncConnection, ReminderGuard], Awaitable[bool]]


async def enqueue_text(
    conn: AsyncConnection,
    dedupe_key: str,
    phone: str,
    text: str,
    *,
    due: datetime | None = None,
    guard: ReminderGuard | None = None,
    organization_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """As `enqueue`, a text message (SMS) to `phone` (E.164)."""
    return await _insert(conn, dedupe_key, SMS, phone, text.encode(), due, guard, organization_id)


async def enqueue(
    conn: AsyncConnection,
    dedupe_key: str,
    recipient: str,
    message: Message,
    *,
    due: datetime | None = None,
    guard: ReminderGuard | None = None,
    organization_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """Queues `message` for `recipient` in the caller's transaction, to be sent from
    `due` (None: at once); its id, or None when a message with `dedupe_key` is queued
    already (it is not queued again). A `guard`ed message is sent only while the guard
    holds, else DROPPED. `organization_id`: the organization the message is about, whose
    OWNER/ADMIN see it if it cannot be delivered."""
    return await _insert(
        conn, dedupe_key, EMAIL, recipient, bytes(message), due, guard, organization_id
    )


async def _insert(
    conn: AsyncConnection,
    dedupe_key: str,
    channel: str,
    recipient: str,
    data: bytes,
    due: datetime | None,
    guard: ReminderGuard | None,
    organization_id: uuid.UUID | None,
) -> uuid.UUID | None:
    values: dict[str, object] = {
        "id": uuid7(),
        "dedupe_key": dedupe_key,
        "channel": channel,
        "recipient": recipient,
        "message": data,
    }
    if due is not None:
        values["next_attempt_at"] = due
    if organization_id is not None:
        values["organization_id"] = organization_id
    if guard is not None:
        values |= {
            "booking_id": guard.booking_id,
            "booking_start": guard.start,
            "user_id": guard.user_id,
        }
    result = await conn.execute(
        pg_insert(deliveries)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[deliveries.c.dedupe_key])
        .returning(deliveries.c.id)
    )
    queued: uuid.UUID | None = result.scalar()
    return queued


async def queued_keys(conn: AsyncConnection, dedupe_keys: Sequence[str]) -> set[str]:
    """Those of `dedupe_keys` queued already (whatever became of them)."""
    if not dedupe_keys:
        return set()
    rows = await conn.execute(
        select(deliveries.c.dedupe_key).where(deliveries.c.dedupe_key.in_(list(dedupe_keys)))
    )
    return set(rows.scalars())


def backoff(
    attempts: int,
    rand: Callable[[], float] = random.random,
    first_wait: timedelta = FIRST_WAIT,
) -> timedelta:
    """The wait after the `attempts`-th failed try: full jitter, a random time up to
    first_wait * 2^(attempts - 1), at most MAX_WAIT."""
    ceiling = min(MAX_WAIT, first_wait * (1 << min(attempts - 1, 30)))
    return ceiling * rand()


async def dispatch_once(
    engine: AsyncEngine,
    mailer: Mailer,
    now: datetime,
    batch: int = 20,
    *,
    rand: Callable[[], float] = random.random,
    guard: Guard | None = None,
    only: Sequence[uuid.UUID] | None = None,
    first_wait: timedelta = FIRST_WAIT,
    sms: SmsChannel | None = None,
) -> Dispatched:
    """Sends up to `batch` messages due at `now`, one transaction each; what happened to
    them. Messages another dispatcher holds are skipped, not waited for. `only`: just
    these messages (a request sending what it queued). A guarded message without a
    `guard` to check it, and a text message without an `sms` channel, wait for a
    dispatcher that has one."""
    done = Dispatched()
    senders = Senders(mailer, sms)
    # Channels found with their circuit open: left alone for the rest of the batch.
    circuits_open: set[str] = set()
    async with engine.connect() as conn:
        for _ in range(batch):
            async with conn.begin():
                retry_in = functools.partial(backoff, rand=rand, first_wait=first_wait)
                if not await _dispatch_next(
                    conn, senders, now, retry_in, done, guard, only, circuits_open
                ):
                    break
    return done


@dataclass(frozen=True, slots=True)
class Senders:
    mailer: Mailer
    sms: SmsChannel | None

    async def send(self, channel: str, recipient: str, data: bytes) -> None:
        """Sends one message; MailUnavailable or MailRefused for what went wrong, by
        whichever channel (an SMS provider's refusal is a refusal too)."""
        if channel == EMAIL:
            # As queued: parsing and writing it out again would cost milliseconds.
            await self.mailer.send_raw(data, envelope_sender(data), [recipient])
            return
        assert self.sms is not None  # the query takes texts only with a channel
        try:
            await self.sms.send(recipient, data.decode())
        except SmsRejected as error:
            raise MailRefused(str(error)) from error
        except SmsUnavailable as error:
            # Keeps the circuit's BreakerOpen as the cause, as the mailer does.
            raise MailUnavailable(str(error)) from error.__cause__


async def _dispatch_next(
    conn: AsyncConnection,
    senders: Senders,
    now: datetime,
    retry_in: Callable[[int], timedelta],
    done: Dispatched,
    guard: Guard | None,
    only: Sequence[uuid.UUID] | None,
    circuits_open: set[str],
) -> bool:
    query = select(
        deliveries.c.id,
        deliveries.c.channel,
        deliveries.c.recipient,
        deliveries.c.message,
        deliveries.c.attempts,
        deliveries.c.created_at,
        deliveries.c.booking_id,
        deliveries.c.booking_start,
        deliveries.c.user_id,
    ).where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
    if only is not None:
        query = query.where(deliveries.c.id.in_(list(only)))
    if guard is None:
        query = query.where(deliveries.c.booking_id.is_(None))
    if senders.sms is None:
        query = query.where(deliveries.c.channel == EMAIL)
    if circuits_open:
        query = query.where(deliveries.c.channel.not_in(circuits_open))
    found = await conn.execute(
        # `only` waits for a message another dispatcher is sending: its caller then
        # knows it has left (or failed) when this returns.
        # Ties in insertion order (uuid7): one change's messages leave as they were made.
        query.order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(1)
        .with_for_update(skip_locked=only is None)
    )
    row = found.mappings().first()
    if row is None:
        return False
    attempts = row["attempts"] + 1
    this = update(deliveries).where(deliveries.c.id == row["id"])
    if row["booking_id"] is not None and guard is not None:
        held = ReminderGuard(
            row["booking_id"], row["booking_start"], row["user_id"], row["channel"]
        )
        # Late (the mail server was down): a reminder after the start is no reminder.
        if now >= held.start or not await guard(conn, held):
            await conn.execute(this.values(status=DROPPED))
            done.dropped += 1
            return True
    try:
        await senders.send(row["channel"], row["recipient"], row["message"])
    except MailUnavailable as error:
        if not isinstance(error.__cause__, BreakerOpen):
            await _failed(conn, this, row, attempts, now, retry_in, error, done)
            return True
        # Not tried: the channel's circuit is open. The message waits without a try
        # counted, and so do the channel's others in this batch (the circuit would
        # answer them the same); the other channel's go on.
        await conn.execute(this.values(next_attempt_at=now + CIRCUIT_WAIT))
        done.postponed += 1
        circuits_open.add(row["channel"])
        return True
    except MailRefused as error:
        log.warning("delivery %s refused for good: %s", row["id"], error)
        await conn.execute(this.values(status=DEAD, attempts=attempts, last_error=_text(error)))
        done.dead += 1
        return True
    except Exception as error:  # one message's failure is that message's alone
        log.exception("delivery %s failed", row["id"])
        await _failed(conn, this, row, attempts, now, retry_in, error, done)
        return True
    await conn.execute(this.values(status=SENT, attempts=attempts, sent_at=now, last_error=None))
    done.sent += 1
    return True


async def _failed(
    conn: AsyncConnection,
    this: Update,
    row: RowMapping,
    attempts: int,
    now: datetime,
    retry_in: Callable[[int], timedelta],
    error: Exception,
    done: Dispatched,
) -> None:
    """A try that failed for now: tried again later, or given up."""
    if attempts >= MAX_ATTEMPTS and now - row["created_at"] >= GIVE_UP_AFTER:
        log.warning("delivery %s given up after %d tries: %s", row["id"], attempts, error)
        await conn.execute(this.values(status=DEAD, attempts=attempts, last_error=_text(error)))
        done.dead += 1
        return
    next_attempt = now + retry_in(attempts)
    await conn.execute(
        this.values(attempts=attempts, next_attempt_at=next_attempt, last_error=_text(error))
    )
    done.retrying += 1


def _text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_LENGTH]


async def dead_letters(
    conn: AsyncConnection, limit: int = 50, organization_id: uuid.UUID | None = None
) -> list[DeadLetter]:
    """Messages given up (those about one organization), newest first."""
    query = select(deliveries).where(deliveries.c.status == DEAD)
    if organization_id is not None:
        query = query.where(deliveries.c.organization_id == organization_id)
    rows = await conn.execute(
        query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit)
    )
    return [_dead_letter(r) for r in rows.mappings()]


async def dead_letter(conn: AsyncConnection, delivery_id: uuid.UUID) -> DeadLetter | None:
    """One message, if it was given up."""
    rows = await conn.execute(
        select(deliveries).where(deliveries.c.id == delivery_id, deliveries.c.status == DEAD)
    )
    row = rows.mappings().first()
    return _dead_letter(row) if row is not None else None


def _dead_letter(r: RowMapping) -> DeadLetter:
    return DeadLetter(
        id=r["id"],
        dedupe_key=r["dedupe_key"],
        recipient=r["recipient"],
        subject=parse(r["message"])["Subject"] if r["channel"] == EMAIL else None,
        attempts=r["attempts"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        organization_id=r["organization_id"],
        channel=r["channel"],
    )


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
