"""Outgoing e-mail over SMTP (aiosmtplib), the sender when SMTP_URL is set.

    smtp://user:password@host:25             plain (no TLS at all)
    smtp+starttls://user:password@host:587   STARTTLS, required
    smtps://user:password@host:465           TLS from the first byte

User and password are URL-decoded (`%40` for `@`). Certificates are verified against the
system's trust store (tests pass their own `ssl_context`).

Each send is bounded (`within`), goes through the circuit breaker "SMTP" (its state in
the logs and /readyz), and is retried with backoff and jitter on what may pass: a
connection refused or reset, a timeout, a 4xx reply. A 5xx reply is the server saying
no for good: `MailRefused` at once, and it does not count against the circuit (the
server is up). A retry after a timeout that struck once the server had the message may
deliver it twice; for links that are single-use anyway, twice beats never.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiosmtplib

from infra.mail import MailRefused, MailUnavailable, envelope_sender
from infra.resilience import Breaker, BreakerOpen, retrying, within

log = logging.getLogger("booking.mail")

Security = Literal["plain", "starttls", "tls"]
SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
TRIES = 3


@dataclass(frozen=True)
class SmtpTarget:
    """Where SMTP_URL says to send, and as whom."""

    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:  # for logs and errors: never the credentials
        scheme = next(name for name, (kind, _) in SCHEMES.items() if kind == self.security)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """The target of an SMTP_URL; ValueError naming SMTP_URL, and never echoing the URL
    (it may hold a password), when it is not one."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"SMTP_URL: unknown scheme {parts.scheme!r}: "
            "use smtp://, smtp+starttls:// or smtps://user:password@host:port"
        )
    security, default_port = SCHEMES[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("SMTP_URL: the port is not a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("SMTP_URL: no host (smtp://user:password@host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("SMTP_URL: nothing may follow host:port (no path, no ?query)")
    return SmtpTarget(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class _Transient(Exception):
    """A 4xx reply: the server (or a recipient's) asks to try again later."""


# What may pass on a later try; each counts against the circuit. aiosmtplib's connect,
# disconnect and timeout errors are OSErrors (ConnectionError, TimeoutError).
_UNAVAILABLE = (OSError, TimeoutError, _Transient)


def _refusal(error: aiosmtplib.SMTPException) -> Exception:
    """What a reply error of aiosmtplib means: _Transient for 4xx, MailRefused else."""
    codes = [error.code] if isinstance(error, aiosmtplib.SMTPResponseException) else []
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in error.recipients]
    if codes and all(400 <= code < 500 for code in codes):
        return _Transient(f"{type(error).__name__}: {error}")
    # 5xx, or something the server does not support (AUTH, STARTTLS): not for retrying.
    return MailRefused(f"{type(error).__name__}: {error}")


class SmtpMailer:
    """The `Mailer` over SMTP. One connection per message for now (a pool, or one
    connection reused while messages queue, is later work)."""

    name = "smtp"

    def __init__(
        self,
        target: SmtpTarget,
        *,
        timeout: float = 10.0,
        attempts: int = TRIES,
        first_wait: float = 0.2,
        max_wait: float = 2.0,
        breaker: Breaker | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout  # one send, connecting included
        self.attempts = attempts
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.breaker = breaker or Breaker(
            "SMTP", fail_max=5, reset_timeout=30.0, failures=_UNAVAILABLE
        )
        # Verified against the system's certificates unless a test brings its own CA.
        self._tls = ssl_context or ssl.create_default_context()

    async def send(self, message: EmailMessage) -> None:
        """Sends `message`; MailUnavailable when the server cannot take it now (after
        the retries, or at once while the circuit is open), MailRefused when it never
        will."""
        await self.send_raw(bytes(message), envelope_sender(message), [str(message["To"])])

    async def send_raw(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        """As `send`, a message already written out (the queue keeps its bytes)."""
        try:
            async for attempt in retrying(
                on=_UNAVAILABLE,
                attempts=self.attempts,
                first_wait=self.first_wait,
                max_wait=self.max_wait,
                name=f"SMTP {self.target}",
            ):
                with attempt:
                    async with self.breaker, within(self.timeout):
                        await self._send_once(data, sender, recipients)
        except (*_UNAVAILABLE, BreakerOpen) as error:
            kind = type(error).__name__
            raise MailUnavailable(f"SMTP {self.target} unavailable: {kind}: {error}") from error
        log.info("mail to %s sent through %s", ", ".join(recipients), self.target)

    async def _send_once(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        target = self.target
        try:
            await aiosmtplib.send(
                data,
                sender=sender,
                recipients=list(recipients),
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                timeout=self.timeout,
                use_tls=target.security == "tls",
                # Plain means plain: no opportunistic STARTTLS that a bad certificate
                # would turn into failed sends.
                start_tls=target.security == "starttls",
                tls_context=self._tls if target.security != "plain" else None,
            )
        except (OSError, TimeoutError):
            raise  # connection refused/reset, timeouts: aiosmtplib's own are OSErrors
        except aiosmtplib.SMTPException as error:
            raise _refusal(error) from error
