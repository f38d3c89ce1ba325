"""Outgoing e-mail: the `Mailer` interface and the sender used when SMTP is not configured.

`FileMailer` delivers nothing: it writes each message as an `.eml` file (any mail
client opens one) under MAIL_DIR and logs where, so a developer follows the links in
them, and tests read them as a user reads their inbox. With SMTP_URL set, the app sends
through `infra.smtp_mail.SmtpMailer` instead, behind the same interface.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol

log = logging.getLogger("booking.mail")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...

    async def send_raw(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Sends a message already written out (the queue keeps its bytes): `sender`
        and `recipients` are the envelope's."""
        ...


def envelope_sender(message: EmailMessage | bytes) -> str:
    """The address of a message's From, read from its headers only (parsing a whole
    message costs milliseconds; its headers, microseconds)."""
    if isinstance(message, bytes):
        headers = BytesHeaderParser(policy=compat32).parsebytes(message)
        return parseaddr(str(headers["From"] or ""))[1]
    return parseaddr(str(message["From"] or ""))[1]


class MailUnavailable(Exception):
    """The mail server cannot take the message now (down, timing out, asking to try
    later, or its circuit is open); a later send may succeed."""


class MailRefused(Exception):
    """The mail server refused the message for good (a 5xx reply, a failed login): sending
    it again would not help."""


def compose(sender: str, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="booking.local")
    message.set_content(text)
    return message


class FileMailer:
    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        await self.send_raw(message.as_bytes(), envelope_sender(message), [str(message["To"])])

    async def send_raw(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        path = await asyncio.to_thread(self._write, data)
        # WARNING, not INFO: visible under uvicorn's default logging, and true: the
        # message was not delivered, only written down.
        log.warning("mail to %s not sent (no SMTP): written to %s", ", ".join(recipients), path)

    def _write(self, data: bytes) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Names sort in the order written; the random part keeps processes apart.
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.eml"
        path = self.directory / name
        partial = self.directory / f".{name}.partial"
        # Owner-only: the links in these messages are secrets until used. Renamed
        # into place whole, so a reader never sees half a message.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        partial.rename(path)
        return path
