"""Organization webhooks end to end: endpoints made over the API by OWNER/ADMIN only (the
signing secret shown once; private, link-local and metadata addresses refused), events
queued once per endpoint and event id in the publisher's transaction, and deliveries
POSTed to a receiver on loopback (tests/webhook_receiver.py) that verifies each with the
`standardwebhooks` library. Failures are retried with backoff (the dispatcher's clock is
moved, nothing sleeps), a redirect is a failure and is not followed, an endpoint failing
for a day is paused and its owners e-mailed, and resuming or redelivering recovers; two
dispatchers at once deliver each of 100 events exactly once.

Two databases of their own: one behind an app process with WEBHOOK_ALLOW_LOOPBACK=true
(the API tests), one that no server touches (the tests that move the clock)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import DomainError, ErrorCode
from domain.notifications import webhooks
from domain.notifications.tables import notification_deliveries
from domain.notifications.url_guard import IPAddress
from domain.notifications.webhook_sender import (
    FAILING_LIMIT,
    MAX_ATTEMPTS,
    HttpWebhookSender,
    dispatch_webhooks,
    dispatch_webhooks_once,
    message_id_of,
    webhook_sender_from_settings,
)
from domain.notifications.webhook_tables import webhook_deliveries, webhook_endpoints
from domain.notifications.webhooks import WebhookEvent
from infra.database import create_engine
from infra.ids import to_global_id, uuid7
from infra.settings import Settings
from tests.business import Business, Person, create_business, sign_up
from tests.conftest import GraphQLClient
from tests.processes import Apps, own_database, running_apps
from tests.race_helpers import db_key
from tests.webhook_receiver import Receiver, receiver

CREATE = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    endpoint { id url events active pausedReason }
    signingSecret
    errors { code field message }
  }
}"""

ENDPOINTS = """
query($slug: String!, $first: Int, $after: String) {
  organization(slug: $slug) {
    webhookEndpoints {
      id url events active pausedReason
      deliveries(first: $first, after: $after) {
        edges { cursor node {
          id event status attempts lastStatusCode lastError nextAttemptAt createdAt
        } }
        pageInfo { hasNextPage hasPreviousPage endCursor }
      }
    }
  }
}"""

BY_ID = """
mutation($id: ID!) {
  %s(%s: $id) {
    endpoint { id active pausedReason }
    signingSecret
    errors { code field message }
  }
}"""
DELETE = BY_ID % ("deleteWebhookEndpoint", "endpointId")
RESUME = BY_ID % ("resumeWebhookEndpoint", "endpointId")
REDELIVER = BY_ID % ("redeliverWebhook", "deliveryId")


def now() -> datetime:
    return datetime.now(UTC)


def sender(**options: Any) -> HttpWebhookSender:
    return HttpWebhookSender(timeout=2.0, allow_loopback=True, **options)


async def dispatch_all(engine: AsyncEngine, at: datetime, **options: Any) -> int:
    """Attempts everything due at `at`: how many attempts."""
    client = sender(**options)
    try:
        total = 0
        while made := await dispatch_webhooks_once(engine, client, at):
            total += made
        return total
    finally:
        await client.aclose()


# ---- fixtures ---------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api() -> AsyncIterator[tuple[Apps, str]]:
    """An app process on a database of its own, loopback endpoints allowed; it sends
    nothing itself (NOTIFICATIONS_WORKER=external): these tests dispatch, at their own
    times (tests/test_webhook_events.py has the app's own dispatcher send)."""
    settings = {"WEBHOOK_ALLOW_LOOPBACK": "true", "NOTIFICATIONS_WORKER": "external"}
    async with (
        own_database() as url,
        running_apps(url, count=1, redis_url=None, settings=settings) as apps,
    ):
        yield apps, url


@pytest_asyncio.fixture(loop_scope="session")
async def gql(api: tuple[Apps, str]) -> AsyncIterator[GraphQLClient]:
    apps, _ = api
    async with httpx.AsyncClient(base_url=apps.processes[0].base_url, timeout=30) as http:
        yield GraphQLClient(http)


@pytest_asyncio.fixture(loop_scope="session")
async def api_engine(api: tuple[Apps, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(api[1], pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def quiet_database() -> AsyncIterator[str]:
    async with own_database() as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def engine(quiet_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(quiet_database, pool_size=4)
    try:
        async with engine.begin() as conn:  # each test starts with nothing queued
            await conn.execute(webhook_endpoints.delete())
            await conn.execute(notification_deliveries.delete())
        yield engine
    finally:
        await engine.dispose()


# ---- helpers ----------------------------------------------------------------------------------


async def make_org(engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID, str]:
    """An organization and its OWNER, straight into the database: (org, owner, e-mail)."""
    org_id, owner_id = uuid7(), uuid7()
    email = f"owner-{owner_id.hex[-12:]}@example.com"
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO users (id, email, name) VALUES (:id, :email, 'Olga Owner')"),
            {"id": owner_id, "email": email},
        )
        await conn.execute(
            text(
                "INSERT INTO organizations (id, name, slug, time_zone, currency)"
                " VALUES (:id, 'Hook Clinic', :slug, 'Europe/Berlin', 'EUR')"
            ),
            {"id": org_id, "slug": f"hooks-{org_id.hex[-12:]}"},
        )
        await conn.execute(
            text("INSERT INTO memberships VALUES (:org, :user, 'OWNER')"),
            {"org": org_id, "user": owner_id},
        )
    return org_id, owner_id, email


async def make_endpoint(
    engine: AsyncEngine,
    url: str,
    events: Sequence[WebhookEvent] = (WebhookEvent.BOOKING_CONFIRMED,),
    **options: Any,
) -> tuple[webhooks.CreatedEndpoint, uuid.UUID]:
    org_id, owner_id, _ = await make_org(engine)
    async with engine.begin() as conn:
        created = await webhooks.create_endpoint(
            conn, owner_id, org_id, url, events, allow_loopback=True, **options
        )
    return created, owner_id


async def publish(
    engine: AsyncEngine,
    org_id: uuid.UUID,
    event: WebhookEvent = WebhookEvent.BOOKING_CONFIRMED,
    event_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    async with engine.begin() as conn:
        return await webhooks.publish(
            conn,
            org_id,
            event,
            event_id or str(uuid7()),
            datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
            data if data is not None else {"bookingId": "Qm9va2luZzox", "status": "CONFIRMED"},
        )


async def rows_of(engine: AsyncEngine, endpoint_id: uuid.UUID) -> list[Any]:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(webhook_deliveries)
            .where(webhook_deliveries.c.endpoint_id == endpoint_id)
            .order_by(webhook_deliveries.c.id)
        )
        return list(found.mappings())


async def endpoint_row(engine: AsyncEngine, endpoint_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        )
        return found.mappings().one()


def listen(hooks: Receiver, created: webhooks.CreatedEndpoint, path: str = "/hooks") -> None:
    hooks.secrets[path] = created.signing_secret


async def create_over_api(
    gql: GraphQLClient, token: str | None, org_id: str, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    data = await gql.data(
        CREATE,
        {
            "input": {
                "organizationId": org_id,
                "url": url,
                "events": events or ["BOOKING_CONFIRMED", "BOOKING_CANCELLED"],
            }
        },
        token,
    )
    result: dict[str, Any] = data["createWebhookEndpoint"]
    return result


async def endpoints_over_api(
    gql: GraphQLClient, biz: Business, token: str, **page: Any
) -> list[dict[str, Any]]:
    data = await gql.data(ENDPOINTS, {"slug": biz.slug, **page}, token)
    found: list[dict[str, Any]] = data["organization"]["webhookEndpoints"]
    return found


# ---- the API ----------------------------------------------------------------------------------


async def test_created_over_the_api_with_its_secret_shown_once_then_delivered_and_verified(
    gql: GraphQLClient, api_engine: AsyncEngine
) -> None:
    biz = await create_business(gql)
    async with receiver() as hooks:
        made = await create_over_api(gql, biz.owner.token, biz.org_id, hooks.url())
        assert made["errors"] == [], made
        secret = made["signingSecret"]
        assert secret.startswith("whsec_")
        endpoint = made["endpoint"]
        assert endpoint["url"] == hooks.url()
        assert endpoint["events"] == ["BOOKING_CONFIRMED", "BOOKING_CANCELLED"]
        assert (endpoint["active"], endpoint["pausedReason"]) == (True, None)
        hooks.secrets["/hooks"] = secret

        # Not readable afterwards: the type has no such field, and nothing else says it.
        listed = await endpoints_over_api(gql, biz, biz.owner.token)
        assert [e["id"] for e in listed] == [endpoint["id"]]
        assert secret not in json.dumps(listed)
        asked = await gql.raw(
            "query($slug: String!) { organization(slug: $slug) {"
            " webhookEndpoints { signingSecret } } }",
            {"slug": biz.slug},
            biz.owner.token,
        )
        assert asked["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        org_key = db_key(biz.org_id, "Organization")
        event_id = str(uuid7())
        assert await publish(api_engine, org_key, WebhookEvent.BOOKING_CONFIRMED, event_id) == 1
        # Not subscribed: nothing queued.
        assert await publish(api_engine, org_key, WebhookEvent.PAYMENT_REFUNDED) == 0
        assert await dispatch_all(api_engine, now()) == 1

        [got] = hooks.received
        assert got.verified, got.error
        assert got.method == "POST"
        assert got.headers["content-type"] == "application/json"
        assert got.event == {
            "type": "booking.confirmed",
            "id": event_id,
            "timestamp": "2026-12-01T09:00:00Z",
            "data": {"bookingId": "Qm9va2luZzox", "status": "CONFIRMED"},
        }
        endpoint_key = db_key(endpoint["id"], "WebhookEndpoint")
        assert got.headers["webhook-id"] == message_id_of(event_id, endpoint_key)

        [listed_one] = await endpoints_over_api(gql, biz, biz.owner.token)
        [edge] = listed_one["deliveries"]["edges"]
        delivery = edge["node"]
        assert delivery["event"] == "BOOKING_CONFIRMED"
        assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 1)
        assert (delivery["lastStatusCode"], delivery["lastError"]) == (200, None)
        assert delivery["nextAttemptAt"] is None

        # Redelivered: the same bytes and webhook-id again, a second attempt.
        again = await gql.data(REDELIVER, {"id": delivery["id"]}, biz.owner.token)
        assert again["redeliverWebhook"]["errors"] == [], again
        assert again["redeliverWebhook"]["endpoint"]["id"] == endpoint["id"]
        assert again["redeliverWebhook"]["signingSecret"] is None
        assert await dispatch_all(api_engine, now()) == 1
        first, second = hooks.received
        assert second.verified, second.error
        assert second.body == first.body
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        [listed_one] = await endpoints_over_api(gql, biz, biz.owner.token)
        node = listed_one["deliveries"]["edges"][0]["node"]
        assert (node["status"], node["attempts"]) == ("DELIVERED", 2)

        # Deleted: gone from the list, its deliveries with it.
        gone = await gql.data(DELETE, {"id": endpoint["id"]}, biz.owner.token)
        assert gone["deleteWebhookEndpoint"]["errors"] == [], gone
        assert await endpoints_over_api(gql, biz, biz.owner.token) == []
        assert await rows_of(api_engine, endpoint_key) == []
        missing = await gql.data(DELETE, {"id": endpoint["id"]}, biz.owner.token)
        assert [e["code"] for e in missing["deleteWebhookEndpoint"]["errors"]] == ["NOT_FOUND"]


async def test_private_link_local_and_metadata_addresses_are_refused(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    for url in (
        "http://10.0.0.1/",
        "https://10.0.0.1/hooks",
        "https://192.168.1.1/",
        "https://172.16.0.5/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/",
        "https://[::ffff:10.0.0.1]/",
        "https://[fe80::1]/",
        "http://93.184.215.14/",  # public, but not https
        "https://user:secret@93.184.215.14/",
        "ftp://93.184.215.14/",
    ):
        made = await create_over_api(gql, biz.owner.token, biz.org_id, url)
        assert made["endpoint"] is None, url
        assert [(e["code"], e["field"]) for e in made["errors"]] == [
            ("INVALID_INPUT", "input.url")
        ], (url, made)
    # Every bad field at once.
    data = await gql.data(
        CREATE,
        {"input": {"organizationId": biz.org_id, "url": "https://10.0.0.1/", "events": []}},
        biz.owner.token,
    )
    fields = {e["field"] for e in data["createWebhookEndpoint"]["errors"]}
    assert fields == {"input.url", "input.events"}
    assert await endpoints_over_api(gql, biz, biz.owner.token) == []


async def test_only_owners_and_admins_manage_endpoints(
    gql: GraphQLClient, api_engine: AsyncEngine
) -> None:
    biz = await create_business(gql)
    other = await create_business(gql)
    stranger = await sign_up(gql)
    admin = await sign_up(gql)
    async with api_engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO memberships VALUES (:org, :user, 'ADMIN')"),
            {"org": db_key(biz.org_id, "Organization"), "user": db_key(admin.user_id, "User")},
        )
    url = "https://93.184.215.14/hooks"  # public: no resolving, never sent to here
    made = await create_over_api(gql, admin.token, biz.org_id, url)
    assert made["errors"] == [], made
    endpoint_id = made["endpoint"]["id"]

    person: Person
    for person in (stranger, other.owner):
        refused = await create_over_api(gql, person.token, biz.org_id, url)
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
        for document, name in (
            (DELETE, "deleteWebhookEndpoint"),
            (RESUME, "resumeWebhookEndpoint"),
        ):
            answer = await gql.data(document, {"id": endpoint_id}, person.token)
            assert [e["code"] for e in answer[name]["errors"]] == ["FORBIDDEN"]
        asked = await gql.raw(ENDPOINTS, {"slug": biz.slug}, person.token)
        assert asked["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await gql.raw(
        CREATE, {"input": {"organizationId": biz.org_id, "url": url, "events": ["BOOKING_CREATED"]}}
    )
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    asked = await gql.raw(ENDPOINTS, {"slug": biz.slug})
    assert asked["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert [e["id"] for e in await endpoints_over_api(gql, biz, admin.token)] == [endpoint_id]
    assert [e["id"] for e in await endpoints_over_api(gql, biz, biz.owner.token)] == [endpoint_id]


async def test_resume_over_the_api_sends_what_was_set_aside(
    gql: GraphQLClient, api_engine: AsyncEngine
) -> None:
    biz = await create_business(gql)
    async with receiver() as hooks:
        made = await create_over_api(gql, biz.owner.token, biz.org_id, hooks.url())
        hooks.secrets["/hooks"] = made["signingSecret"]
        endpoint_id = made["endpoint"]["id"]
        key = db_key(endpoint_id, "WebhookEndpoint")
        assert await publish(api_engine, db_key(biz.org_id, "Organization")) == 1
        async with api_engine.begin() as conn:  # as a pause leaves it
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == key)
                .values(active=False, paused_reason="Paused on 2026-11-27 after failing")
            )
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.endpoint_id == key)
                .values(status="DEAD", next_attempt_at=None)
            )
        [paused] = await endpoints_over_api(gql, biz, biz.owner.token)
        assert (paused["active"], paused["pausedReason"]) == (
            False,
            "Paused on 2026-11-27 after failing",
        )
        assert await dispatch_all(api_engine, now()) == 0
        resumed = await gql.data(RESUME, {"id": endpoint_id}, biz.owner.token)
        assert resumed["resumeWebhookEndpoint"] == {
            "endpoint": {"id": endpoint_id, "active": True, "pausedReason": None},
            "signingSecret": None,
            "errors": [],
        }
        assert await dispatch_all(api_engine, now() + timedelta(seconds=1)) == 1
        [got] = hooks.received
        assert got.verified, got.error
        [row] = await rows_of(api_engine, key)
        assert row["status"] == "DELIVERED"


async def test_deliveries_are_paged_newest_first(
    gql: GraphQLClient, api_engine: AsyncEngine
) -> None:
    biz = await create_business(gql)
    made = await create_over_api(gql, biz.owner.token, biz.org_id, "https://93.184.215.14/h")
    org_key = db_key(biz.org_id, "Organization")
    ids = [str(uuid7()) for _ in range(3)]
    for event_id in ids:
        assert await publish(api_engine, org_key, event_id=event_id) == 1
    async with api_engine.begin() as conn:  # kept from any dispatcher: nothing to send
        await conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.endpoint_id
                == db_key(made["endpoint"]["id"], "WebhookEndpoint")
            )
            .values(status="DEAD", next_attempt_at=None)
        )
    [page] = await endpoints_over_api(gql, biz, biz.owner.token, first=2)
    rows = await rows_of(api_engine, db_key(made["endpoint"]["id"], "WebhookEndpoint"))
    newest_first = [to_global_id("WebhookDelivery", r["id"]) for r in reversed(rows)]
    got = page["deliveries"]
    assert [e["node"]["id"] for e in got["edges"]] == newest_first[:2]
    assert got["pageInfo"]["hasNextPage"] is True
    [rest] = await endpoints_over_api(
        gql, biz, biz.owner.token, first=2, after=got["pageInfo"]["endCursor"]
    )
    assert [e["node"]["id"] for e in rest["deliveries"]["edges"]] == newest_first[2:]
    assert rest["deliveries"]["pageInfo"]["hasNextPage"] is False


# ---- publishing -------------------------------------------------------------------------------


async def test_one_event_id_is_delivered_once_and_a_rollback_queues_nothing(
    engine: AsyncEngine,
) -> None:
    created, _ = await make_endpoint(
        engine, "https://93.184.215.14/a", [WebhookEvent.BOOKING_CONFIRMED]
    )
    org_id = created.endpoint.organization_id
    event_id = str(uuid7())
    assert await publish(engine, org_id, event_id=event_id) == 1
    assert await publish(engine, org_id, event_id=event_id) == 0
    async with engine.begin() as conn:  # and within one transaction
        other = str(uuid7())
        assert (
            await webhooks.publish(conn, org_id, WebhookEvent.BOOKING_CONFIRMED, other, now(), {})
            == 1
        )
        assert (
            await webhooks.publish(conn, org_id, WebhookEvent.BOOKING_CONFIRMED, other, now(), {})
            == 0
        )
    async with engine.connect() as conn:
        transaction = await conn.begin()
        assert (
            await webhooks.publish(conn, org_id, WebhookEvent.BOOKING_CONFIRMED, "x", now(), {})
            == 1
        )
        await transaction.rollback()
    rows = await rows_of(engine, created.endpoint.id)
    assert sorted(r["event_id"] for r in rows) == sorted([event_id, other])
    assert all(r["status"] == "PENDING" and r["attempts"] == 0 for r in rows)


async def test_the_body_is_standard_webhooks_json() -> None:
    body = webhooks.body_of(
        WebhookEvent.BOOKING_NO_SHOW,
        "evt_1",
        datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC),
        {"id": uuid.UUID(int=1), "at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC)},
    )
    assert json.loads(body) == {
        "type": "booking.no_show",
        "id": "evt_1",
        "timestamp": "2026-12-01T10:00:00.123000Z",
        "data": {"id": "00000000-0000-0000-0000-000000000001", "at": "2026-12-01T09:00:00Z"},
    }
    assert WebhookEvent.PAYMENT_SUCCEEDED.type == "payment.succeeded"


async def test_at_most_twenty_endpoints_and_loopback_only_when_allowed(engine: AsyncEngine) -> None:
    org_id, owner_id, _ = await make_org(engine)
    async with engine.begin() as conn:
        with pytest.raises(DomainError) as loopback:
            await webhooks.create_endpoint(
                conn, owner_id, org_id, "http://127.0.0.1:9/x", [WebhookEvent.BOOKING_CREATED]
            )
    assert (loopback.value.code, loopback.value.field) == (ErrorCode.INVALID_INPUT, "input.url")
    for i in range(webhooks.MAX_ENDPOINTS):
        async with engine.begin() as conn:
            await webhooks.create_endpoint(
                conn, owner_id, org_id, f"https://93.184.215.14/{i}", [WebhookEvent.BOOKING_CREATED]
            )
    async with engine.begin() as conn:
        with pytest.raises(DomainError) as over:
            await webhooks.create_endpoint(
                conn, owner_id, org_id, "https://93.184.215.14/21", [WebhookEvent.BOOKING_CREATED]
            )
    assert over.value.code is ErrorCode.INVALID_INPUT
    assert "at most 20" in over.value.message


# ---- sending ------------------------------------------------------------------------------------


async def test_a_failing_receiver_is_retried_with_backoff_then_delivered_once(
    engine: AsyncEngine,
) -> None:
    async with receiver() as hooks:
        created, _ = await make_endpoint(engine, hooks.url())
        listen(hooks, created)
        assert await publish(engine, created.endpoint.organization_id) == 1
        hooks.status = 500
        start = now()
        client = sender()
        try:
            done = await dispatch_webhooks(engine, client, start)
            assert (done.delivered, done.failed, done.dead) == (0, 1, 0)
            [row] = await rows_of(engine, created.endpoint.id)
            assert (row["status"], row["attempts"], row["last_status_code"]) == ("FAILED", 1, 500)
            assert row["last_error"] == "HTTP 500"
            assert start < row["next_attempt_at"] <= start + timedelta(seconds=30)
            assert (await endpoint_row(engine, created.endpoint.id))["failing_since"] == start
            # Not due yet: nothing is sent before its time.
            assert await dispatch_webhooks_once(engine, client, start) == 0
            # The second wait is up to a minute.
            later = row["next_attempt_at"] + timedelta(milliseconds=1)
            assert (await dispatch_webhooks(engine, client, later)).failed == 1
            [row] = await rows_of(engine, created.endpoint.id)
            assert later < row["next_attempt_at"] <= later + timedelta(seconds=60)
            hooks.status = 200
            last = row["next_attempt_at"]
            assert (await dispatch_webhooks(engine, client, last)).delivered == 1
            assert await dispatch_webhooks_once(engine, client, last + timedelta(hours=1)) == 0
        finally:
            await client.aclose()
    assert len(hooks.received) == 3
    assert all(r.verified for r in hooks.received), [r.error for r in hooks.received]
    assert len({r.headers["webhook-id"] for r in hooks.received}) == 1
    assert len({r.body for r in hooks.received}) == 1
    [row] = await rows_of(engine, created.endpoint.id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("DELIVERED", 3, 200)
    assert (row["delivered_at"], row["next_attempt_at"], row["last_error"]) == (last, None, None)
    assert (await endpoint_row(engine, created.endpoint.id))["failing_since"] is None


async def test_a_redirect_is_a_failure_and_is_not_followed(engine: AsyncEngine) -> None:
    async with receiver() as hooks:
        created, _ = await make_endpoint(engine, hooks.url())
        listen(hooks, created)
        hooks.status, hooks.location = 302, hooks.url("/elsewhere")
        assert await publish(engine, created.endpoint.organization_id) == 1
        assert await dispatch_all(engine, now()) == 1
    assert [r.path for r in hooks.received] == ["/hooks"]
    [row] = await rows_of(engine, created.endpoint.id)
    assert (row["status"], row["last_status_code"]) == ("FAILED", 302)
    assert "redirects are not followed" in row["last_error"]


async def test_failing_for_a_day_pauses_the_endpoint_tells_the_owner_and_resume_recovers(
    engine: AsyncEngine,
) -> None:
    async with receiver() as hooks:
        created, owner_id = await make_endpoint(engine, hooks.url())
        listen(hooks, created)
        endpoint_id, org_id = created.endpoint.id, created.endpoint.organization_id
        for _ in range(2):
            assert await publish(engine, org_id) == 1
        hooks.status = 500
        start = now()
        moment, paused = start, 0
        client = sender()
        try:
            # Each hour, whatever is due: the backoff never waits more than an hour.
            while not paused and moment < start + timedelta(hours=48):
                done = await dispatch_webhooks(engine, client, moment, batch=100)
                paused += done.paused
                row = await endpoint_row(engine, endpoint_id)
                if row["active"]:
                    assert moment - start < FAILING_LIMIT
                moment += timedelta(hours=1, seconds=1)
        finally:
            await client.aclose()
        assert paused == 1
        endpoint = await endpoint_row(engine, endpoint_id)
        assert endpoint["active"] is False
        assert endpoint["paused_reason"].startswith("Paused on ")
        assert endpoint["paused_reason"].endswith("after failing for 24 hours: HTTP 500")
        rows = await rows_of(engine, endpoint_id)
        assert [r["status"] for r in rows] == ["DEAD", "DEAD"]
        assert all(r["attempts"] >= MAX_ATTEMPTS for r in rows), [r["attempts"] for r in rows]
        tried = len(hooks.received)
        assert all(r.verified for r in hooks.received)

        # The owner is told, once, how to resume.
        async with engine.connect() as conn:
            mails = list(
                (
                    await conn.execute(
                        select(notification_deliveries).where(
                            notification_deliveries.c.dedupe_key.like(
                                f"webhook-paused:{endpoint_id}:%"
                            )
                        )
                    )
                ).mappings()
            )
        [mail] = mails
        message = message_from_bytes(mail["message"], policy=policy.default)
        owner_email = await email_of(engine, owner_id)
        assert mail["recipient"] == owner_email
        assert message["To"] == owner_email
        assert hooks.url() in message["Subject"]
        body = message.get_body(("plain",))
        assert body is not None
        words = body.get_content()
        assert hooks.url() in words
        assert "HTTP 500" in words
        assert "resumeWebhookEndpoint" in words
        assert to_global_id("WebhookEndpoint", endpoint_id) in words

        # Paused: nothing is sent, new events are not queued.
        assert await dispatch_all(engine, moment) == 0
        assert await publish(engine, org_id) == 0
        assert len(hooks.received) == tried

        # Resumed, with the receiver back: everything set aside goes, once.
        hooks.status = 200
        async with engine.begin() as conn:
            resumed = await webhooks.resume_endpoint(conn, owner_id, endpoint_id, moment)
        assert (resumed.active, resumed.paused_reason, resumed.failing_since) == (True, None, None)
        assert await dispatch_all(engine, moment) == 2
        assert await dispatch_all(engine, moment + timedelta(days=1)) == 0
    assert len(hooks.received) == tried + 2
    assert all(r.verified for r in hooks.received[tried:])
    rows = await rows_of(engine, endpoint_id)
    assert [r["status"] for r in rows] == ["DELIVERED", "DELIVERED"]


async def email_of(engine: AsyncEngine, user_id: uuid.UUID) -> str:
    async with engine.connect() as conn:
        email = await conn.scalar(text("SELECT email FROM users WHERE id = :id"), {"id": user_id})
    assert isinstance(email, str)
    return email


async def test_one_delivery_failing_for_a_day_while_others_succeed_dies_alone(
    engine: AsyncEngine,
) -> None:
    async with receiver() as hooks:
        created, _ = await make_endpoint(engine, hooks.url())
        listen(hooks, created)
        doomed = str(uuid7())
        hooks.failing.add(message_id_of(doomed, created.endpoint.id))
        assert await publish(engine, created.endpoint.organization_id, event_id=doomed) == 1
        start = now()
        moment = start
        client = sender()
        try:
            while moment < start + timedelta(hours=30):
                # Another event each hour, delivered: the endpoint works.
                assert await publish(engine, created.endpoint.organization_id) == 1
                await dispatch_webhooks(engine, client, moment, batch=100)
                moment += timedelta(hours=1, seconds=1)
        finally:
            await client.aclose()
    rows = await rows_of(engine, created.endpoint.id)
    assert rows[0]["event_id"] == doomed
    assert rows[0]["status"] == "DEAD"
    assert rows[0]["attempts"] >= MAX_ATTEMPTS
    assert {r["status"] for r in rows[1:]} == {"DELIVERED"}
    endpoint = await endpoint_row(engine, created.endpoint.id)
    assert (endpoint["active"], endpoint["paused_reason"]) == (True, None)


async def test_two_dispatchers_deliver_each_of_100_events_exactly_once(
    quiet_database: str, engine: AsyncEngine
) -> None:
    async with receiver() as hooks:
        created, _ = await make_endpoint(engine, hooks.url())
        listen(hooks, created)
        for _ in range(100):
            assert await publish(engine, created.endpoint.organization_id) == 1
        moment = now()

        async def dispatcher() -> int:
            own = create_engine(quiet_database, pool_size=1)
            client = sender()
            try:
                total = 0
                while made := await dispatch_webhooks_once(own, client, moment, batch=5):
                    total += made
                return total
            finally:
                await client.aclose()
                await own.dispose()

        counts = await asyncio.gather(dispatcher(), dispatcher())
    assert sum(counts) == 100, counts
    assert all(counts), counts  # both took part
    ids = Counter(r.headers["webhook-id"] for r in hooks.received)
    assert len(ids) == 100
    assert set(ids.values()) == {1}
    assert all(r.verified for r in hooks.received)
    rows = await rows_of(engine, created.endpoint.id)
    assert {(r["status"], r["attempts"]) for r in rows} == {("DELIVERED", 1)}


async def test_the_sender_connects_to_the_checked_address_with_the_original_host(
    engine: AsyncEngine,
) -> None:
    """A name is resolved once per attempt and that address is the one connected to
    (Host header: the name); resolving to a private address at send time (DNS
    rebinding) fails the attempt without a request."""
    answers: dict[str, list[IPAddress]] = {
        "hooks.example.test": [ipaddress.ip_address("127.0.0.1")]
    }

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return answers[host]

    async with receiver() as hooks:
        url = f"http://hooks.example.test:{hooks.port}/hooks"
        created, _ = await make_endpoint(engine, url, resolve=resolve)
        listen(hooks, created)
        assert await publish(engine, created.endpoint.organization_id) == 1
        assert await dispatch_all(engine, now(), resolve=resolve) == 1
        [got] = hooks.received
        assert got.verified, got.error
        assert got.headers["host"] == f"hooks.example.test:{hooks.port}"

        answers["hooks.example.test"] = [ipaddress.ip_address("10.0.0.7")]
        assert await publish(engine, created.endpoint.organization_id) == 1
        assert await dispatch_all(engine, now(), resolve=resolve) == 1
        assert len(hooks.received) == 1
    rows = await rows_of(engine, created.endpoint.id)
    assert rows[1]["status"] == "FAILED"
    assert rows[1]["last_status_code"] is None
    assert rows[1]["last_error"].startswith("Refused: ")


async def test_a_receiver_that_does_not_answer_in_time_fails_the_attempt(
    engine: AsyncEngine,
) -> None:
    async with receiver() as hooks:
        hooks.delay = 2.0
        created, _ = await make_endpoint(engine, hooks.url())
        listen(hooks, created)
        assert await publish(engine, created.endpoint.organization_id) == 1
        client = HttpWebhookSender(timeout=0.3, allow_loopback=True)
        try:
            assert await dispatch_webhooks_once(engine, client, now()) == 1
        finally:
            await client.aclose()
    [row] = await rows_of(engine, created.endpoint.id)
    assert (row["status"], row["last_status_code"]) == ("FAILED", None)
    assert row["last_error"] == "Timed out after 0.3 s"


def test_the_sender_is_made_from_the_settings() -> None:
    settings = Settings.model_validate(
        {
            "WEBHOOK_TIMEOUT_SECONDS": "3.5",
            "WEBHOOK_ALLOW_LOOPBACK": "true",
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        }
    )
    made = webhook_sender_from_settings(settings)
    assert isinstance(made, HttpWebhookSender)
    assert (made.timeout, made.allow_loopback, made.allow_private) == (3.5, True, True)
    defaults = Settings.model_validate({})
    assert (
        defaults.webhook_timeout_seconds,
        defaults.webhook_allow_loopback,
        defaults.webhook_allow_private_networks,
    ) == (10.0, False, False)
