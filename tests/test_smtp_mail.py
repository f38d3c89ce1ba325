"""The SMTP sender against a real SMTP server on loopback (aiosmtpd's Controller, in its
own thread): what arrives, AUTH, STARTTLS and TLS with a certificate of the test's own,
a server down then up, a permanent refusal, the circuit; and SMTP_URL's parsing."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.mail import MailRefused, MailUnavailable, compose
from infra.resilience import Breaker, BreakerOpen
from infra.settings import Settings
from infra.smtp_mail import Security, SmtpMailer, SmtpTarget, parse_smtp_url
from tests.conftest import Server

USER, PASSWORD = "mailer@example.com", "p@ss:word/1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """The aiosmtpd handler: keeps what arrives; `reply` answers DATA instead."""

    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    data_calls: int = 0
    reply: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_calls += 1
        if self.reply:
            return self.reply
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False)


def start(inbox: Inbox, port: int, **options: Any) -> Controller:
    # AUTH is offered, not required (auth_required would make aiosmtpd warn when TLS is
    # not required too): the client logs in because it has credentials.
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = start(inbox, port)
    yield inbox, port
    controller.stop()


def mailer(port: int, security: Security = "plain", **options: Any) -> SmtpMailer:
    target = SmtpTarget(
        "127.0.0.1",
        port,
        security,
        options.pop("username", None),
        options.pop("password", None),
    )
    options.setdefault("timeout", 2.0)
    options.setdefault("first_wait", 0.01)
    options.setdefault("max_wait", 0.05)
    return SmtpMailer(target, **options)


def letter(to: str = "guest@example.com") -> EmailMessage:
    return compose("Booking <no-reply@example.com>", to, "Your booking", "See you at 10:00.\n")


async def test_a_message_arrives_intact(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    await mailer(port).send(letter())
    [message] = inbox.received
    assert message["From"] == "Booking <no-reply@example.com>"
    assert message["To"] == "guest@example.com"
    assert message["Subject"] == "Your booking"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "See you at 10:00.\n"  # CRLF on the wire
    assert inbox.envelopes == [("no-reply@example.com", ["guest@example.com"])]


async def test_auth_with_user_and_password() -> None:
    inbox, port = Inbox(), free_port()
    controller = start(inbox, port, authenticator=authenticator, auth_require_tls=False)
    try:
        with pytest.raises(MailRefused, match="535"):
            await mailer(port, username=USER, password="wrong").send(letter())
        await mailer(port, username=USER, password=PASSWORD).send(letter())
    finally:
        controller.stop()
    assert len(inbox.received) == 1


def certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for 127.0.0.1 and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The server's context and a client context that trusts (only) its certificate."""
    cert, key = certificate()
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert)
    (directory / "key.pem").write_bytes(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=cert.decode())
    return server, client


async def test_starttls_with_auth(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls
    inbox, port = Inbox(), free_port()
    controller = start(
        inbox, port, tls_context=server_context, require_starttls=True, authenticator=authenticator
    )
    try:
        sender = mailer(
            port, "starttls", username=USER, password=PASSWORD, ssl_context=client_context
        )
        await sender.send(letter())
        # The default context (the system's CAs) does not trust the test's certificate.
        untrusting = mailer(port, "starttls", attempts=1)
        with pytest.raises(MailUnavailable):
            await untrusting.send(letter())
    finally:
        controller.stop()
    assert len(inbox.received) == 1


async def test_implicit_tls(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls
    inbox, port = Inbox(), free_port()
    controller = start(inbox, port, ssl_context=server_context)
    try:
        await mailer(port, "tls", ssl_context=client_context).send(letter())
    finally:
        controller.stop()
    assert len(inbox.received) == 1


async def test_a_server_down_then_up() -> None:
    port = free_port()  # nothing listens there
    sender = mailer(port, attempts=2)
    with pytest.raises(MailUnavailable, match="unavailable") as failed:
        await sender.send(letter())
    assert isinstance(failed.value.__cause__, ConnectionError)
    assert sender.breaker.state == "closed"  # 2 failures of 5
    inbox = Inbox()
    controller = start(inbox, port)
    try:
        await sender.send(letter())
    finally:
        controller.stop()
    assert len(inbox.received) == 1
    assert sender.breaker.failures == 0


async def test_a_permanent_refusal_is_not_retried(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    inbox.reply = "550 5.1.1 No such user here"
    sender = mailer(port, attempts=3)
    with pytest.raises(MailRefused, match="No such user"):
        await sender.send(letter())
    assert inbox.data_calls == 1
    assert sender.breaker.failures == 0  # the server is up: no mark against the circuit


async def test_a_4xx_reply_is_retried(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    inbox.reply = "451 4.3.0 Try again later"
    with pytest.raises(MailUnavailable, match="Try again later"):
        await mailer(port, attempts=3).send(letter())
    assert inbox.data_calls == 3


async def test_repeated_failures_open_the_circuit(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    breaker = Breaker("SMTP", fail_max=2, reset_timeout=60.0, failures=(OSError,))
    sender = mailer(port, attempts=1, breaker=breaker)
    caplog.set_level(logging.INFO)
    for _ in range(2):
        with pytest.raises(MailUnavailable):
            await sender.send(letter())
    assert breaker.state == "opened"
    assert "SMTP unavailable: circuit opened" in caplog.text
    inbox = Inbox()
    controller = start(inbox, port)
    try:  # up again, but the circuit refuses at once until its time is up
        with pytest.raises(MailUnavailable) as refused:
            await sender.send(letter())
    finally:
        controller.stop()
    assert isinstance(refused.value.__cause__, BreakerOpen)
    assert inbox.data_calls == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25, "plain")),
        (
            "smtp+starttls://u:p@smtp.example.com",
            SmtpTarget("smtp.example.com", 587, "starttls", "u", "p"),
        ),
        ("smtps://smtp.example.com", SmtpTarget("smtp.example.com", 465, "tls")),
        (
            "smtps://mailer%40example.com:p%40ss%3Aword%2F1@smtp.example.com:2465",
            SmtpTarget("smtp.example.com", 2465, "tls", USER, PASSWORD),
        ),
        ("smtp://[::1]:2525/", SmtpTarget("::1", 2525, "plain")),
    ],
)
def test_smtp_url_parsing(url: str, expected: SmtpTarget) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://u:hunter2@mail.example.com", "unknown scheme 'http'"),
        ("mail.example.com:25", "unknown scheme"),
        ("smtp://u:hunter2@mail.example.com:port", "port"),
        ("smtp://u:hunter2@mail.example.com:0", "port"),
        ("smtp://u:hunter2@:25", "no host"),
        ("smtp://u:hunter2@mail.example.com/x?verify=false", "nothing may follow"),
    ],
)
def test_a_bad_smtp_url_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("SMTP_URL", url)
    with pytest.raises(ValueError, match="SMTP_URL") as refused:
        Settings.from_env()
    assert says in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_smtp_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_URL", raising=False)
    monkeypatch.delenv("SMTP_TIMEOUT_SECONDS", raising=False)
    unset = Settings.from_env()
    assert (unset.smtp, unset.smtp_timeout_seconds) == (None, 10.0)
    monkeypatch.setenv("SMTP_URL", "smtp+starttls://me:hunter2@smtp.example.com")
    monkeypatch.setenv("SMTP_TIMEOUT_SECONDS", "3.5")
    settings = Settings.from_env()
    assert settings.smtp == SmtpTarget("smtp.example.com", 587, "starttls", "me", "hunter2")
    assert settings.smtp_timeout_seconds == 3.5
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.smtp)
    assert str(settings.smtp) == "smtp+starttls://smtp.example.com:587"


async def test_readyz_shows_the_mail_sender(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        ready = await http.get("/readyz")
    # The session's app has no SMTP_URL: the file sender, which has no circuit.
    assert ready.json()["mail"] == {"sender": "file", "circuit": "none"}
