"""The notification queue against real PostgreSQL (a database of its own) and a real SMTP
server on loopback (aiosmtpd's Controller, in its own thread): a message queued once per
dedupe key and only when its transaction commits, sent and marked, retried with backoff
while the server is down, dead when refused or given up, put back by `retry`, and two
dispatchers at once sending each message exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest_asyncio
from aiosmtpd.controller import Controller
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.notifications.deliveries import (
    DEAD,
    FIRST_WAIT,
    GIVE_UP_AFTER,
    MAX_ATTEMPTS,
    MAX_WAIT,
    PENDING,
    SENT,
    backoff,
    dead_letters,
    dispatch_once,
    enqueue,
    enqueue_text,
    parse,
    retry,
)
from domain.notifications.maintenance import KEPT, forget_delivered
from domain.notifications.messages import Rendered, to_email
from domain.notifications.tables import notification_deliveries as deliveries
from infra.database import create_engine
from infra.mail import MailUnavailable
from infra.resilience import BreakerOpen
from infra.smtp_mail import SmtpMailer, SmtpTarget
from tests.conftest import free_port
from tests.processes import own_database


@dataclass
class Inbox:
    """The aiosmtpd handler: keeps what arrives; `reply` answers DATA instead."""

    received: list[EmailMessage] = field(default_factory=list)
    reply: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply:
            return self.reply
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 OK"


@contextlib.contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def mailer(port: int) -> SmtpMailer:
    return SmtpMailer(
        SmtpTarget("127.0.0.1", port, "plain"),
        timeout=2.0,
        attempts=1,
        first_wait=0.01,
        max_wait=0.05,
    )


def letter(n: int = 0, to: str = "guest@example.com") -> EmailMessage:
    rendered = Rendered(
        subject=f"Your booking nº {n}",
        text=f"See you at 10:00, guest {n}.\n",
        html=f"<p>See you at 10:00, guest {n}.</p>\n",
    )
    return parse(bytes(to_email(rendered, sender="Booking <no-reply@example.com>", recipient=to)))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def database() -> AsyncIterator[str]:
    async with own_database() as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database, pool_size=2)
    try:
        async with engine.begin() as conn:  # each test starts with an empty queue
            await conn.execute(deliveries.delete())
        yield engine
    finally:
        await engine.dispose()


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(deliveries))).mappings())


async def queue(engine: AsyncEngine, *letters: tuple[str, EmailMessage]) -> None:
    async with engine.begin() as conn:
        for key, message in letters:
            await enqueue(conn, key, str(message["To"]), message)


def key() -> str:
    return f"test:{uuid.uuid4()}"


def now() -> datetime:
    return datetime.now(UTC)


async def test_one_dedupe_key_queues_one_message(engine: AsyncEngine) -> None:
    dedupe = key()
    async with engine.begin() as conn:
        assert await enqueue(conn, dedupe, "guest@example.com", letter(1))
        assert not await enqueue(conn, dedupe, "guest@example.com", letter(2))
    async with engine.begin() as conn:  # and in a later transaction too
        assert not await enqueue(conn, dedupe, "guest@example.com", letter(3))
    [row] = await rows(engine)
    assert row["status"] == PENDING
    assert row["attempts"] == 0
    assert parse(row["message"])["Subject"] == "Your booking nº 1"


async def test_a_rolled_back_change_queues_nothing(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await enqueue(conn, key(), "guest@example.com", letter())
        await transaction.rollback()
    assert await rows(engine) == []


async def test_a_message_is_sent_intact_and_marked_sent(engine: AsyncEngine) -> None:
    original = letter(7)
    await queue(engine, (key(), original))
    port = free_port()
    with smtp_server(port) as inbox:
        moment = now()
        done = await dispatch_once(engine, mailer(port), moment)
        assert (done.sent, done.retrying, done.dead) == (1, 0, 0)
        assert (await dispatch_once(engine, mailer(port), moment)).total == 0
    [received] = inbox.received
    assert received["Message-ID"] == original["Message-ID"]
    assert received["Subject"] == "Your booking nº 7"
    assert received["To"] == "guest@example.com"
    for kind in ("plain", "html"):
        sent, got = original.get_body((kind,)), received.get_body((kind,))
        assert sent is not None
        assert got is not None
        assert got.get_content().replace("\r\n", "\n") == sent.get_content()
    [row] = await rows(engine)
    assert (row["status"], row["attempts"], row["sent_at"]) == (SENT, 1, moment)
    assert row["last_error"] is None


async def test_server_down_then_up_delivers_once(engine: AsyncEngine) -> None:
    await queue(engine, (key(), letter()))
    port = free_port()  # nobody listens yet
    down_at = now()
    done = await dispatch_once(engine, mailer(port), down_at)
    assert (done.sent, done.retrying, done.dead) == (0, 1, 0)
    [row] = await rows(engine)
    assert (row["status"], row["attempts"]) == (PENDING, 1)
    assert down_at <= row["next_attempt_at"] <= down_at + FIRST_WAIT
    assert "MailUnavailable" in row["last_error"]
    with smtp_server(port) as inbox:
        # Not due yet: nothing is sent before its time.
        assert (await dispatch_once(engine, mailer(port), down_at)).total == 0
        later = down_at + FIRST_WAIT + timedelta(seconds=1)
        assert (await dispatch_once(engine, mailer(port), later)).sent == 1
        assert (await dispatch_once(engine, mailer(port), later)).total == 0
    assert len(inbox.received) == 1
    [row] = await rows(engine)
    assert (row["status"], row["attempts"], row["sent_at"]) == (SENT, 2, later)


async def test_the_backoff_grows_and_is_jittered_in_full() -> None:
    assert backoff(1, lambda: 1.0) == FIRST_WAIT
    assert backoff(2, lambda: 1.0) == FIRST_WAIT * 2
    assert backoff(3, lambda: 0.5) == FIRST_WAIT * 2
    assert backoff(8, lambda: 1.0) == MAX_WAIT
    assert backoff(1000, lambda: 1.0) == MAX_WAIT
    assert backoff(5, lambda: 0.0) == timedelta(0)


async def test_a_refused_message_is_dead_until_retried(engine: AsyncEngine) -> None:
    await queue(engine, (key(), letter(3, to="nobody@example.com")))
    port = free_port()
    with smtp_server(port) as inbox:
        inbox.reply = "550 5.1.1 no such user"
        moment = now()
        done = await dispatch_once(engine, mailer(port), moment)
        assert (done.sent, done.retrying, done.dead) == (0, 0, 1)
        [row] = await rows(engine)
        assert (row["status"], row["attempts"]) == (DEAD, 1)
        assert "550" in row["last_error"]
        async with engine.begin() as conn:
            [dead] = await dead_letters(conn, 10)
            assert (dead.id, dead.recipient, dead.attempts) == (row["id"], "nobody@example.com", 1)
            assert dead.subject == "Your booking nº 3"
            assert await retry(conn, dead.id, moment)
            assert not await retry(conn, dead.id, moment)  # not dead any more
        [row] = await rows(engine)
        assert (row["status"], row["attempts"]) == (PENDING, 0)
        inbox.reply = None
        assert (await dispatch_once(engine, mailer(port), moment)).sent == 1
    assert len(inbox.received) == 1
    async with engine.connect() as conn:
        assert await dead_letters(conn, 10) == []


async def test_given_up_after_max_attempts_and_a_day(engine: AsyncEngine) -> None:
    old, young = key(), key()
    await queue(engine, (old, letter(1)), (young, letter(2)))
    moment = now()
    async with engine.begin() as conn:
        await conn.execute(update(deliveries).values(attempts=MAX_ATTEMPTS - 1))
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.dedupe_key == old)
            .values(created_at=moment - GIVE_UP_AFTER)
        )
    done = await dispatch_once(engine, mailer(free_port()), moment)  # nobody listens
    assert (done.sent, done.retrying, done.dead) == (0, 1, 1)
    status = {r["dedupe_key"]: (r["status"], r["attempts"]) for r in await rows(engine)}
    # Queued less than a day ago, it is tried on, however many tries that takes.
    assert status == {old: (DEAD, MAX_ATTEMPTS), young: (PENDING, MAX_ATTEMPTS)}


class Flaky:
    """A mailer that breaks (a bug, not a mail error) on one subject."""

    def __init__(self, breaks_on: str) -> None:
        self.breaks_on = breaks_on
        self.sent: list[str] = []

    async def send(self, message: EmailMessage) -> None:
        if message["Subject"] == self.breaks_on:
            raise RuntimeError("bug")
        self.sent.append(str(message["Subject"]))

    async def send_raw(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        await self.send(parse(data))


async def test_one_message_failing_does_not_fail_the_batch(engine: AsyncEngine) -> None:
    await queue(engine, *((key(), letter(n)) for n in range(3)))
    flaky = Flaky(breaks_on="Your booking nº 1")
    done = await dispatch_once(engine, flaky, now())
    assert (done.sent, done.retrying, done.dead) == (2, 1, 0)
    assert sorted(flaky.sent) == ["Your booking nº 0", "Your booking nº 2"]
    [broken] = [r for r in await rows(engine) if r["status"] == PENDING]
    assert broken["last_error"] == "RuntimeError: bug"


MESSAGES = 500


async def test_two_dispatchers_send_each_message_exactly_once(
    database: str, engine: AsyncEngine
) -> None:
    letters = [letter(n, to=f"guest{n}@example.com") for n in range(MESSAGES)]
    await queue(engine, *((key(), message) for message in letters))
    port = free_port()

    async def drain(engine: AsyncEngine) -> int:
        sent = 0
        smtp = mailer(port)
        while (done := await dispatch_once(engine, smtp, now())).total:
            assert done.sent == done.total
            sent += done.sent
        return sent

    engines = [create_engine(database, pool_size=1) for _ in range(2)]
    try:
        with smtp_server(port) as inbox:
            started = time.monotonic()
            shares = await asyncio.gather(*(drain(e) for e in engines))
            seconds = time.monotonic() - started
    finally:
        for e in engines:
            await e.dispose()
    counts = Counter(str(m["Message-ID"]) for m in inbox.received)
    assert set(counts) == {str(m["Message-ID"]) for m in letters}
    assert set(counts.values()) == {1}
    assert sum(shares) == MESSAGES
    assert all(share > 0 for share in shares), shares  # both took part
    assert {r["status"] for r in await rows(engine)} == {SENT}
    print(f"\n{MESSAGES} messages, dispatchers sent {shares}, in {seconds:.2f} s")


class CircuitOpen:
    """A mailer whose circuit is open: every send refused before it is tried."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        await self.send_raw(bytes(message), "", [])

    async def send_raw(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        self.calls += 1
        raise MailUnavailable("SMTP unavailable") from BreakerOpen("SMTP")


class Texts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    name = "test"

    async def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))

    async def close(self) -> None:
        return None


async def test_an_open_circuit_costs_no_tries_and_does_not_hold_texts_back(
    engine: AsyncEngine,
) -> None:
    """E-mail's circuit open: one message looked at, put back without a try counted, the
    channel's others left for the next batch; the text behind them goes at once."""
    await queue(engine, *((key(), letter(n)) for n in range(3)))
    async with engine.begin() as conn:
        await enqueue_text(conn, key(), "+4915100000001", "Reminder: tomorrow 10:00")
    mailer, texts = CircuitOpen(), Texts()
    at = now()
    done = await dispatch_once(engine, mailer, at, sms=texts)
    assert (done.sent, done.postponed, done.retrying, done.dead) == (1, 1, 0, 0)
    assert mailer.calls == 1
    assert texts.sent == [("+4915100000001", "Reminder: tomorrow 10:00")]
    mails = [r for r in await rows(engine) if r["channel"] == "email"]
    assert {(r["status"], r["attempts"]) for r in mails} == {(PENDING, 0)}
    assert sorted(r["next_attempt_at"] > at for r in mails) == [False, False, True]


async def test_delivered_messages_are_forgotten_after_ninety_days(engine: AsyncEngine) -> None:
    old, young, waiting = key(), key(), key()
    await queue(engine, (old, letter(1)), (young, letter(2)), (waiting, letter(3)))
    at = now()
    async with engine.begin() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.dedupe_key.in_([old, young]))
            .values(status=SENT, sent_at=at)
        )
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.dedupe_key.in_([old, waiting]))
            .values(created_at=at - KEPT - timedelta(days=1))
        )
    assert await forget_delivered(engine, at) == (1, 0)
    # The old one sent is gone; the young one and the one still waiting stay.
    assert sorted(r["dedupe_key"] for r in await rows(engine)) == sorted([young, waiting])
