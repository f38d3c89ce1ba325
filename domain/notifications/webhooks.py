"""Organization webhooks: endpoints an OWNER/ADMIN registers, and the deliveries of the
organization's events to them (`publish`, in the transaction that made the change).
webhook_sender.py sends what is queued here.

The body of every delivery is JSON, in the Standard Webhooks style::

    {
      "type": "booking.confirmed",            # WebhookEvent, lower case, "." after the noun
      "id": "7f0c...",                       # the event id: the same on every retry
      "timestamp": "2026-12-01T09:00:00.123456Z",  # when it happened (ISO 8601, UTC)
      "data": {...}                          # what the publisher gives (ids, times, status)
    }

and is POSTed with ``Content-Type: application/json`` and three headers: ``webhook-id``
(stable for one event to one endpoint, across retries and redeliveries: receivers
de-duplicate on it), ``webhook-timestamp`` (unix seconds of this attempt) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed
with the endpoint's ``signingSecret``); webhook_signing.py shows how a receiver verifies
one with the ``standardwebhooks`` library. The body's bytes are stored as they are
sent, so a retry or a redelivery carries exactly the same bytes.

Event types: booking.created, booking.confirmed, booking.cancelled, booking.rescheduled,
booking.declined, booking.expired, booking.completed, booking.no_show,
payment.succeeded, payment.refunded.

Rules: only OWNER/ADMIN manage endpoints (FORBIDDEN otherwise, whoever asks about an
endpoint that exists); at most MAX_ENDPOINTS per organization; a URL must pass
url_guard.check_webhook_url (https, public addresses; loopback and private networks
only as the settings allow). An event published twice with one id is queued once per
endpoint (UNIQUE (endpoint_id, event_id)); a paused endpoint gets no new events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode, Problems
from domain.notifications import url_guard
from domain.notifications.webhook_signing import new_signing_secret
from domain.notifications.webhook_tables import webhook_deliveries as deliveries
from domain.notifications.webhook_tables import webhook_endpoints as endpoints
from domain.users import service as users
from infra.ids import uuid7

MAX_ENDPOINTS = 20


class WebhookEvent(Enum):
    BOOKING_CREATED = "BOOKING_CREATED"
    BOOKING_CONFIRMED = "BOOKING_CONFIRMED"
    BOOKING_CANCELLED = "BOOKING_CANCELLED"
    BOOKING_RESCHEDULED = "BOOKING_RESCHEDULED"
    BOOKING_DECLINED = "BOOKING_DECLINED"
    BOOKING_EXPIRED = "BOOKING_EXPIRED"
    BOOKING_COMPLETED = "BOOKING_COMPLETED"
    BOOKING_NO_SHOW = "BOOKING_NO_SHOW"
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_REFUNDED = "PAYMENT_REFUNDED"

    @property
    def type(self) -> str:
        """The body's "type": BOOKING_NO_SHOW is "booking.no_show"."""
        noun, _, what = self.value.lower().partition("_")
        return f"{noun}.{what}"


class DeliveryStatus(Enum):
    PENDING = "PENDING"  # queued, not tried since
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # the last try failed; another is scheduled (next_attempt_at)
    DEAD = "DEAD"  # given up (or its endpoint paused); redeliver or resume to retry


QUEUED = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    events: tuple[WebhookEvent, ...]
    active: bool
    paused_reason: str | None
    failing_since: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    signing_secret: str  # shown this once


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event: WebhookEvent
    event_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


def endpoint_of(row: RowMapping) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        organization_id=row["organization_id"],
        url=row["url"],
        events=tuple(WebhookEvent(e) for e in row["events"]),
        active=row["active"],
        paused_reason=row["paused_reason"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
    )


def delivery_of(row: RowMapping) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event=WebhookEvent(row["event"]),
        event_id=row["event_id"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


# ---- the body --------------------------------------------------------------------------------


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the API answers."""
    if moment.tzinfo is None:
        raise ValueError("an event's time needs a time zone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """What json cannot write by itself: ids, times, enums."""
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def body_of(
    event: WebhookEvent, event_id: str, occurred_at: datetime, data: dict[str, Any]
) -> bytes:
    """The exact bytes POSTed (see the module docstring)."""
    document = {
        "type": event.type,
        "id": event_id,
        "timestamp": utc_text(occurred_at),
        "data": data,
    }
    return json.dumps(document, default=_plain, ensure_ascii=False, separators=(",", ":")).encode()


# ---- publishing --------------------------------------------------------------------------------


async def publish(
    conn: AsyncConnection,
    organization_id: uuid.UUID,
    event: WebhookEvent,
    event_id: str,
    occurred_at: datetime,
    data: dict[str, Any],
) -> int:
    """Queues `event` for every active endpoint of the organization subscribed to it, in
    the caller's transaction (rolled back, nothing is sent), due at once; how many were
    queued. An endpoint that has this `event_id` queued already is left alone."""
    if not event_id or len(event_id) > 200:
        raise ValueError("an event id is 1-200 characters")
    body = body_of(event, event_id, occurred_at, data)
    subscribed = (
        await conn.execute(
            select(endpoints.c.id).where(
                endpoints.c.organization_id == organization_id,
                endpoints.c.active,
                endpoints.c.events.contains([event.value]),
            )
        )
    ).scalars()
    rows = [
        {
            "id": uuid7(),
            "endpoint_id": endpoint_id,
            "event": event.value,
            "event_id": event_id,
            "body": body,
            "next_attempt_at": func.now(),
            "queued_at": func.now(),
        }
        for endpoint_id in subscribed
    ]
    if not rows:
        return 0
    result = await conn.execute(
        pg_insert(deliveries)
        .values(rows)
        .on_conflict_do_nothing(constraint="webhook_deliveries_once")
        .returning(deliveries.c.id)
    )
    return len(result.all())


# ---- endpoints ---------------------------------------------------------------------------------


async def create_endpoint(
    conn: AsyncConnection,
    viewer_id: uuid.UUID,
    organization_id: uuid.UUID,
    url: str,
    events: Sequence[WebhookEvent],
    *,
    allow_loopback: bool = False,
    allow_private: bool = False,
    resolve: url_guard.Resolver = url_guard.resolve_host,
) -> CreatedEndpoint:
    """A new endpoint of the organization (OWNER/ADMIN only) and its signing secret;
    every bad field reported at once (INVALID_INPUT on input.url, input.events)."""
    found = await users.organizations_by_id(conn, [organization_id])
    if organization_id not in found:
        raise DomainError(ErrorCode.NOT_FOUND, "No such organization.", "input.organizationId")
    await users.require_manager(conn, viewer_id, organization_id)
    problems = Problems()
    if not events:
        problems.add("input.events", "Choose at least one event to send.")
    try:
        # Checked after the role: nobody else makes this server resolve names.
        target = await url_guard.check_webhook_url(
            url,
            allow_private=allow_private,
            allow_loopback=allow_loopback,
            resolve=resolve,
            field="input.url",
        )
    except DomainError as error:
        problems.add(error.field, error.message)
    problems.check()
    # One organization's creations in turn, so two at once cannot pass the limit together.
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"webhook_endpoints:{organization_id}"},
    )
    count = await conn.scalar(
        select(func.count()).where(endpoints.c.organization_id == organization_id)
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"An organization has at most {MAX_ENDPOINTS} webhook endpoints; delete one first.",
            "input.organizationId",
        )
    secret = new_signing_secret()
    unique = list(dict.fromkeys(events))  # in the order given, each once
    row = (
        (
            await conn.execute(
                endpoints.insert()
                .values(
                    id=uuid7(),
                    organization_id=organization_id,
                    url=target.url,
                    events=[e.value for e in unique],
                    signing_secret=secret,
                )
                .returning(*endpoints.c)
            )
        )
        .mappings()
        .one()
    )
    return CreatedEndpoint(endpoint_of(row), secret)


async def _managed_endpoint(
    conn: AsyncConnection, viewer_id: uuid.UUID, endpoint_id: uuid.UUID, field: str
) -> WebhookEndpoint:
    """The endpoint, when the viewer is OWNER/ADMIN of its organization: NOT_FOUND when
    there is none, FORBIDDEN for anyone else."""
    row = (
        (await conn.execute(select(endpoints).where(endpoints.c.id == endpoint_id)))
        .mappings()
        .first()
    )
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook endpoint.", field)
    await users.require_manager(conn, viewer_id, row["organization_id"])
    return endpoint_of(row)


async def delete_endpoint(
    conn: AsyncConnection, viewer_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """Deletes the endpoint and its deliveries; the endpoint as it was."""
    endpoint = await _managed_endpoint(conn, viewer_id, endpoint_id, "endpointId")
    # Deliveries first: one a dispatcher is sending is waited for here, before the
    # endpoint's row is locked (the dispatcher locks delivery, then endpoint).
    await conn.execute(deliveries.delete().where(deliveries.c.endpoint_id == endpoint_id))
    await conn.execute(endpoints.delete().where(endpoints.c.id == endpoint_id))
    return endpoint


async def resume_endpoint(
    conn: AsyncConnection, viewer_id: uuid.UUID, endpoint_id: uuid.UUID, now: datetime
) -> WebhookEndpoint:
    """Active again, its failures forgotten; every delivery not delivered (DEAD ones
    included) is queued again, due at `now`, with a fresh day of retries."""
    await _managed_endpoint(conn, viewer_id, endpoint_id, "endpointId")
    await conn.execute(  # deliveries, then the endpoint: the dispatcher's lock order
        update(deliveries)
        .where(
            deliveries.c.endpoint_id == endpoint_id,
            deliveries.c.status != DeliveryStatus.DELIVERED.value,
        )
        .values(status=DeliveryStatus.PENDING.value, next_attempt_at=now, queued_at=now)
    )
    row = (
        (
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == endpoint_id)
                .values(active=True, paused_reason=None, failing_since=None)
                .returning(*endpoints.c)
            )
        )
        .mappings()
        .one()
    )
    return endpoint_of(row)


async def redeliver(
    conn: AsyncConnection, viewer_id: uuid.UUID, delivery_id: uuid.UUID, now: datetime
) -> WebhookEndpoint:
    """The delivery queued again (delivered, failed or dead alike), due at `now`, with
    the same body and webhook-id; its endpoint. A paused endpoint's delivery waits for
    resumeWebhookEndpoint."""
    endpoint_id = await conn.scalar(
        select(deliveries.c.endpoint_id).where(deliveries.c.id == delivery_id)
    )
    if endpoint_id is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook delivery.", "deliveryId")
    endpoint = await _managed_endpoint(conn, viewer_id, endpoint_id, "deliveryId")
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=now,
            queued_at=now,
            delivered_at=None,
        )
    )
    return endpoint


async def endpoints_of(conn: AsyncConnection, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
    """The organization's endpoints, oldest first (the caller checks who may see them)."""
    rows = await conn.execute(
        select(endpoints)
        .where(endpoints.c.organization_id == organization_id)
        .order_by(endpoints.c.id)
    )
    return [endpoint_of(r) for r in rows.mappings()]


async def deliveries_page(
    conn: AsyncConnection, endpoint_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[WebhookDelivery]:
    """`first + 1` deliveries of the endpoint, newest first, after the one `after` names:
    the extra one tells whether there is more."""
    query = select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
    if after is not None:
        query = query.where(deliveries.c.id < after)
    rows = await conn.execute(query.order_by(deliveries.c.id.desc()).limit(first + 1))
    return [delivery_of(r) for r in rows.mappings()]
