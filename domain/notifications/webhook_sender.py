"""Sending webhook deliveries: the HTTP sender, and the dispatcher that works the queue.

The sender (`HttpWebhookSender`) runs url_guard's check again before every attempt (DNS
may have changed since the endpoint was made) and connects to the address that check
resolved, not to whatever a second lookup would say (DNS rebinding): the URL's host
becomes that IP, the Host header and TLS SNI stay the original name, and the certificate
is verified against that name (httpcore's ``sni_hostname`` extension). Connections are
not kept alive, so none made for one name is reused for another on the same address.
Redirects are never followed (a 3xx is a failed attempt: its target is unchecked);
environment proxies are ignored (they would undo the pinning). One attempt is one POST
within WEBHOOK_TIMEOUT_SECONDS (infra.resilience.within), never retried inside: the
queue retries. No circuit breaker: one endpoint's outage must not stop the others',
and the queue's backoff already spares a failing receiver.

The dispatcher (`dispatch_webhooks_once`) copies deliveries.py's pattern: one due
delivery at a time, claimed ``FOR UPDATE SKIP LOCKED``, sent while its row is locked and
its outcome recorded in the same transaction, so any number of dispatchers never send
one delivery twice (a crash between the receiver's 2xx and the commit sends it again:
at least once, and the webhook-id lets receivers fold the two).

- 2xx: DELIVERED; the endpoint's failure streak (failing_since) ends.
- Anything else (3xx, 4xx, 5xx, timeouts, connection errors, a URL the guard now
  refuses): FAILED, tried again after `deliveries.backoff` (full jitter, 30 s doubling to
  an hour); the endpoint's failing_since is set at the first failure after a success.
- Once a delivery has been tried MAX_ATTEMPTS times over at least GIVE_UP_AFTER (a day)
  since it was queued: if its endpoint has been failing for FAILING_LIMIT (a day) too,
  the endpoint is paused (active false, pausedReason), its queued deliveries turn DEAD
  and the organization's OWNERs get an e-mail (deliveries.enqueue) saying how to resume;
  otherwise (the endpoint takes other events) this delivery alone is DEAD.

Lock order, to never deadlock with each other or with the mutations: a delivery row,
then its endpoint row (FOR NO KEY UPDATE, which `publish`'s foreign key check does not
wait for). Pausing marks the endpoint's other deliveries DEAD with SKIP LOCKED: one
another dispatcher is sending finds the endpoint paused when it records its outcome.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import DomainError
from domain.notifications import deliveries as mail_queue
from domain.notifications import url_guard, webhook_signing
from domain.notifications.webhook_tables import webhook_deliveries as deliveries
from domain.notifications.webhook_tables import webhook_endpoints as endpoints
from domain.notifications.webhooks import QUEUED, DeliveryStatus
from domain.users import service as users
from infra.ids import to_global_id
from infra.mail import compose
from infra.resilience import within
from infra.settings import Settings

log = logging.getLogger("booking.webhooks")

MAX_ATTEMPTS = 12
GIVE_UP_AFTER = timedelta(hours=24)  # of one delivery's tries, since it was queued
FAILING_LIMIT = timedelta(hours=24)  # of an endpoint's failures in a row: then paused
ERROR_LENGTH = 500
USER_AGENT = "booking-api-webhooks/1"
DEFAULT_MAIL_FROM = "Booking <no-reply@localhost>"  # MAIL_FROM's default
# Where an event id that is no UUID is mapped to one, for the webhook-id.
EVENT_ID_NAMESPACE = uuid.UUID("6b1f3d56-52c0-4c1e-9a0e-8e2f7a1c9d40")

PENDING, DELIVERED, FAILED, DEAD = (s.value for s in DeliveryStatus)


# ---- sending one ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One attempt to make: where, signed with what, which bytes."""

    url: str
    signing_secret: str
    message_id: str  # webhook-id: the same on every attempt of this delivery
    body: bytes


@dataclass(frozen=True, slots=True)
class SendResult:
    """The receiver's HTTP status (None: no answer) and, unless delivered, why not."""

    status_code: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status_code is not None


class WebhookSender(Protocol):
    async def send(self, outgoing: Outgoing) -> SendResult:
        """Makes one attempt; never raises for the receiver's failures."""
        ...

    async def aclose(self) -> None:
        """Lets go of its connections (at shutdown)."""
        ...


def message_id_of(event_id: str, endpoint_id: uuid.UUID) -> str:
    """The webhook-id of an event to an endpoint (webhook_signing.message_id)."""
    try:
        key = uuid.UUID(event_id)
    except ValueError:
        key = uuid.uuid5(EVENT_ID_NAMESPACE, event_id)
    return webhook_signing.message_id(key, endpoint_id)


def host_header(target: url_guard.WebhookTarget) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class HttpWebhookSender:
    """POSTs deliveries over httpx (see the module docstring). `clock` stamps the
    signature (the receiver's five minutes are real time, whatever the dispatcher's
    `now`); `resolve` and `verify` are for tests."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        allow_loopback: bool = False,
        allow_private: bool = False,
        resolve: url_guard.Resolver = url_guard.resolve_host,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        verify: bool | str = True,
    ) -> None:
        self.timeout = timeout
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        self.resolve = resolve
        self.clock = clock
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # no proxies from the environment: they would undo the pinning
            limits=httpx.Limits(max_keepalive_connections=0),  # see the module docstring
            verify=verify,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, outgoing: Outgoing) -> SendResult:
        try:
            target = await url_guard.check_webhook_url(
                outgoing.url,
                allow_private=self.allow_private,
                allow_loopback=self.allow_loopback,
                resolve=self.resolve,
            )
        except DomainError as refused:
            return SendResult(None, f"Refused: {refused.message}")
        address = target.resolved_addresses[0]
        pinned = httpx.URL(target.url).copy_with(host=str(address))
        headers = {
            **webhook_signing.sign(
                outgoing.signing_secret, outgoing.message_id, self.clock(), outgoing.body
            ),
            "Host": host_header(target),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with (
                within(self.timeout),
                self._client.stream(
                    "POST", pinned, content=outgoing.body, headers=headers, extensions=extensions
                ) as response,
            ):
                status = response.status_code  # the body is not read: nothing needs it
        except (TimeoutError, httpx.TimeoutException):  # whichever of the two limits came first
            return SendResult(None, f"Timed out after {self.timeout:g} s")
        except httpx.HTTPError as error:
            return SendResult(None, _describe(error)[:ERROR_LENGTH])
        if 200 <= status < 300:
            return SendResult(status)
        if 300 <= status < 400:
            return SendResult(status, f"HTTP {status} (redirects are not followed)")
        return SendResult(status, f"HTTP {status}")


def webhook_sender_from_settings(settings: Settings) -> WebhookSender:
    """The sender of WEBHOOK_TIMEOUT_SECONDS, WEBHOOK_ALLOW_LOOPBACK and
    WEBHOOK_ALLOW_PRIVATE_NETWORKS."""
    return HttpWebhookSender(
        timeout=settings.webhook_timeout_seconds,
        allow_loopback=settings.webhook_allow_loopback,
        allow_private=settings.webhook_allow_private_networks,
    )


# ---- the queue ---------------------------------------------------------------------------


@dataclass(slots=True)
class WebhooksDispatched:
    """What one `dispatch_webhooks_once` did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    paused: int = 0  # endpoints

    @property
    def total(self) -> int:
        return self.delivered + self.failed + self.dead


async def dispatch_webhooks_once(
    engine: AsyncEngine,
    sender: WebhookSender,
    now: datetime,
    batch: int = 20,
    *,
    mail_from: str = DEFAULT_MAIL_FROM,
    rand: Callable[[], float] = random.random,
) -> int:
    """Makes up to `batch` attempts of deliveries due at `now`, one transaction each;
    how many it made. Deliveries another dispatcher holds, and those of paused
    endpoints, are skipped. `mail_from` signs the e-mail to the owners of an endpoint
    it pauses (pass MAIL_FROM)."""
    return (
        await dispatch_webhooks(engine, sender, now, batch, mail_from=mail_from, rand=rand)
    ).total


async def dispatch_webhooks(
    engine: AsyncEngine,
    sender: WebhookSender,
    now: datetime,
    batch: int = 20,
    *,
    mail_from: str = DEFAULT_MAIL_FROM,
    rand: Callable[[], float] = random.random,
) -> WebhooksDispatched:
    """`dispatch_webhooks_once`, telling what became of each attempt."""
    done = WebhooksDispatched()
    async with engine.connect() as conn:
        for _ in range(batch):
            async with conn.begin():
                if not await _dispatch_next(conn, sender, now, mail_from, rand, done):
                    break
    return done


async def _dispatch_next(
    conn: AsyncConnection,
    sender: WebhookSender,
    now: datetime,
    mail_from: str,
    rand: Callable[[], float],
    done: WebhooksDispatched,
) -> bool:
    row = (
        (
            await conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.endpoint_id,
                    deliveries.c.event_id,
                    deliveries.c.body,
                    deliveries.c.attempts,
                    deliveries.c.queued_at,
                    endpoints.c.url,
                    endpoints.c.signing_secret,
                )
                .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
                .where(
                    deliveries.c.status.in_(QUEUED),
                    deliveries.c.next_attempt_at <= now,
                    endpoints.c.active,
                )
                .order_by(deliveries.c.next_attempt_at)
                .limit(1)
                .with_for_update(skip_locked=True, of=deliveries)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return False
    try:
        result = await sender.send(
            Outgoing(
                url=row["url"],
                signing_secret=row["signing_secret"],
                message_id=message_id_of(row["event_id"], row["endpoint_id"]),
                body=row["body"],
            )
        )
    except Exception as bug:  # a sender's bug is this attempt's failure, not the batch's
        log.exception("webhook delivery %s: the sender failed", row["id"])
        result = SendResult(None, _describe(bug)[:ERROR_LENGTH])
    attempts = row["attempts"] + 1
    this = update(deliveries).where(deliveries.c.id == row["id"])
    endpoint = (
        (
            await conn.execute(
                select(endpoints)
                .where(endpoints.c.id == row["endpoint_id"])
                .with_for_update(key_share=True)  # FOR NO KEY UPDATE
            )
        )
        .mappings()
        .one()
    )
    recorded = {"attempts": attempts, "last_status_code": result.status_code}
    if result.delivered:
        await conn.execute(
            this.values(
                **recorded,
                status=DELIVERED,
                last_error=None,
                next_attempt_at=None,
                delivered_at=now,
            )
        )
        if endpoint["failing_since"] is not None:
            await conn.execute(
                update(endpoints).where(endpoints.c.id == endpoint["id"]).values(failing_since=None)
            )
        done.delivered += 1
        return True

    error = result.error or "no answer"
    failing_since = endpoint["failing_since"] or now
    if endpoint["failing_since"] is None:
        await conn.execute(
            update(endpoints).where(endpoints.c.id == endpoint["id"]).values(failing_since=now)
        )
    dead = {**recorded, "status": DEAD, "last_error": error, "next_attempt_at": None}
    if not endpoint["active"]:  # paused while this was being sent
        await conn.execute(this.values(**dead))
        done.dead += 1
    elif attempts >= MAX_ATTEMPTS and now - row["queued_at"] >= GIVE_UP_AFTER:
        await conn.execute(this.values(**dead))
        done.dead += 1
        if now - failing_since >= FAILING_LIMIT:
            await _pause(
                conn,
                endpoint["id"],
                endpoint["organization_id"],
                endpoint["url"],
                failing_since,
                now,
                error,
                mail_from,
            )
            done.paused += 1
        else:
            log.warning(
                "webhook delivery %s given up after %d tries: %s", row["id"], attempts, error
            )
    else:
        await conn.execute(
            this.values(
                **recorded,
                status=FAILED,
                last_error=error,
                next_attempt_at=now + mail_queue.backoff(attempts, rand),
            )
        )
        done.failed += 1
    return True


def paused_reason(now: datetime, error: str) -> str:
    return f"Paused on {now:%Y-%m-%d} after failing for 24 hours: {error}"


async def _pause(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    organization_id: uuid.UUID,
    url: str,
    failing_since: datetime,
    now: datetime,
    error: str,
    mail_from: str,
) -> None:
    reason = paused_reason(now, error)
    # The host only: receivers put tokens in their URLs' queries.
    host = urlsplit(url).hostname
    log.warning("webhook endpoint %s (host %s) paused: %s", endpoint_id, host, reason)
    await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id)
        .values(active=False, paused_reason=reason)
    )
    # Those another dispatcher holds are skipped: it finds the endpoint paused.
    waiting = (
        select(deliveries.c.id)
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status.in_(QUEUED))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(waiting))
        .values(status=DEAD, next_attempt_at=None)
    )
    organization = (await users.organizations_by_id(conn, [organization_id])).get(organization_id)
    name = organization.name if organization else "your organization"
    global_id = to_global_id("WebhookEndpoint", endpoint_id)
    text = f"""Hello,

the webhook endpoint {url} of {name} has been paused: every delivery to it failed
for 24 hours.

{reason}

Its deliveries that were still waiting are set aside (DEAD); new events are not sent
to it while it is paused. Once the receiver answers with a 2xx status again, resume
the endpoint with the resumeWebhookEndpoint mutation (endpointId: "{global_id}"):
every delivery not yet delivered is sent again from then on. redeliverWebhook sends
one delivery again.
"""
    subject = f"Webhook endpoint paused: {url}"
    for recipient in await users.member_emails(conn, organization_id):
        message = compose(mail_from, recipient, subject, text)
        await mail_queue.enqueue(
            conn,
            f"webhook-paused:{endpoint_id}:{failing_since.isoformat()}:{recipient}",
            recipient,
            message,
        )
