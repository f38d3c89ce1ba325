"""The Starlette application: /graphql (HTTP and WebSocket), health, readiness, metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain import background, events
from domain.booking.service import Policy
from domain.booking.slot_lock import LocalSlotLock, RedisSlotLock
from domain.notifications.scenes import Letterhead
from domain.notifications.webhook_sender import webhook_sender_from_settings
from domain.notifications.worker import NotificationWorker
from domain.payments import service as payments
from domain.users import service as users
from domain.users.oidc_client import providers_from_settings
from domain.users.phone import PhoneCodes, code_key
from domain.users.server_keys import manage_link_key
from domain.users.signing_keys import keys_for
from domain.users.sms import channel_from_settings
from domain.users.tokens import TokenSigner
from infra.bus import EventBus
from infra.database import create_engine, libpq_url, reader
from infra.jobs import JobRunner, in_background_task
from infra.lifecycle import Step, shut_down, stop_task
from infra.mailers import mailer_from_settings
from infra.outbox import Consumer, Row
from infra.rate_limits import RateLimits, parse_figures
from infra.relay import OutboxReader
from infra.settings import Settings
from realtime.hub import Hub
from realtime.websocket import accept as accept_websocket
from schema.root import schema
from web.auth import AUTH_ROUTES
from web.calendar_feed import CALENDAR_FEED_ROUTES
from web.demo import DEMO_ROUTES
from web.graphiql import GRAPHIQL_ROUTES
from web.graphql_endpoint import GraphQLEndpoint, context_for, documents_for, format_error
from web.stripe_webhook import WEBHOOK_ROUTES

log = logging.getLogger("booking")

REQUESTS = Counter("http_requests_total", "HTTP requests", ["path", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["path"])
READY_TIMEOUT = 2.0  # seconds


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings = Settings.from_env()
    dsn = libpq_url(settings)
    engine = create_engine(dsn, pool_size=settings.database_pool_size)
    lifetime = settings.access_token_minutes * 60
    keys = await keys_for(engine, settings.jwt_secret, lifetime)
    app.state.settings = settings
    app.state.engine = engine
    app.state.reader = reader(engine)
    redis = (
        Redis.from_url(settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
        if settings.redis_url
        else None
    )
    app.state.slot_lock = RedisSlotLock(redis, settings.redis_prefix) if redis else LocalSlotLock()
    app.state.rate_limits = RateLimits(
        parse_figures(settings.rate_limits), redis, settings.redis_prefix
    )
    sms = channel_from_settings(settings)
    app.state.phone_codes = PhoneCodes(
        await code_key(engine, settings.jwt_secret), sms, settings.default_phone_region
    )
    if sms.name == "console":
        log.warning("SMS_PROVIDER is console: phone sign-in codes go to this log, not to phones")
    app.state.policy = Policy(
        hold_seconds=settings.booking_hold_seconds,
        manage_key=await manage_link_key(engine, settings.jwt_secret),
    )
    provider = payments.provider_from_settings(settings)
    app.state.payments = provider
    app.state.signer = TokenSigner(keys, settings.jwt_issuer, settings.jwt_audience, lifetime)
    app.state.mailer = mailer_from_settings(settings)
    # Third-party sign-in: nothing fetched yet (discovery at each one's first sign-in).
    app.state.identity_providers = providers_from_settings(settings)
    hub = Hub(
        schema=schema,
        reader=app.state.reader,
        dsn=dsn,
        bus=EventBus(settings.redis_url, settings.redis_prefix),
        signer=app.state.signer,
        context=lambda viewer: context_for(app.state, viewer=viewer),
        format_error=format_error,
        documents=documents_for(app.state),
    )
    app.state.live = hub.live
    app.state.realtime = hub

    # Held, not looked up at each commit: this direct path stays as it is when tests
    # delay or mute the bus's path into the same live windows (hub.live.changed).
    live_changed = hub.live.changed

    def committed(batch: list[events.Event]) -> None:
        """This process's own committed events, before it answers again."""
        users.forget_changed(batch)
        live_changed(batch)

    events.on_commit(engine, committed)
    await hub.start()
    tune_garbage_collector()
    jobs = JobRunner(dsn, [background.register])
    await jobs.start({"engine": engine, "payments": provider})
    app.state.jobs = jobs
    settler = in_background_task(settle_payments(dsn, engine, provider).run(), "payments-settler")
    webhook_sender = webhook_sender_from_settings(settings)
    notifier = NotificationWorker(
        dsn,
        engine,
        app.state.mailer,
        webhook_sender,
        Letterhead(settings.mail_from, settings.app_url, app.state.policy.manage_key),
        retry_first_wait=timedelta(seconds=settings.notification_retry_seconds),
        sms=sms,
    )
    app.state.notifier = notifier
    notifying = (
        in_background_task(notifier.run(), "notifications")
        if settings.notifications_worker == "in-process"
        else None
    )
    try:
        yield
    finally:
        # Bounded: a PostgreSQL or Redis that stopped answering must not keep the
        # process from stopping (uvicorn waits for the lifespan however many signals).
        steps: list[Step] = [
            ("the job worker", jobs.stop),
            ("the payments settler", lambda: stop_task(settler)),
            ("the notification worker", lambda: stop_task(notifying)),
            ("the webhook sender", webhook_sender.aclose),
            ("realtime", hub.stop),
            ("the payment provider", provider.close),
            ("the SMS provider", sms.close),
        ]
        if redis is not None:
            steps.append(("redis", redis.aclose))
        steps.append(("the database pool", engine.dispose))
        await shut_down(steps, settings.shutdown_timeout_seconds)


def settle_payments(
    dsn: str, engine: AsyncEngine, provider: payments.PaymentProvider
) -> OutboxReader:
    """The outbox consumer "payments": each booking that ended unkept is settled (its
    open intent cancelled, its payment refunded per the policy) once its change committed,
    whichever process or job made it."""

    async def handle(rows: list[Row]) -> None:
        await payments.settle_changed(engine, provider, rows, datetime.now(UTC))

    return OutboxReader(dsn, [Consumer("payments", handle, batch=100, lease_seconds=60.0)])


def tune_garbage_collector() -> None:
    """A large answer allocates ~100,000 short-lived objects. With CPython's defaults
    that triggers full collections that each re-scan every long-lived object of the
    process (schema, SQLAlchemy, modules): ~30 ms pauses, the p95 of big answers.
    Freeze what start-up built (never garbage) and collect the young generation less
    often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        # Bounded: a probe must answer, and a database that does not answer is not ready.
        async with asyncio.timeout(READY_TIMEOUT), request.app.state.engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception as error:  # noqa: BLE001 - whatever failed, the answer is 503
        # One line: probes repeat every few seconds for as long as an outage lasts.
        log.warning("readiness check failed: %r", error)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    # Payments or mail down is no reason to take this process out of rotation (every
    # process shares them), but it is shown: each circuit's state, as the logs say it.
    provider = request.app.state.payments
    mailer = request.app.state.mailer
    return JSONResponse(
        {
            "status": "ok",
            "database": "reachable",
            "payments": {"provider": provider.name, "circuit": _circuit(provider)},
            "mail": {
                "sender": getattr(mailer, "name", type(mailer).__name__),
                "circuit": _circuit(mailer),
            },
        }
    )


def _circuit(outside: object) -> str:
    """The state of an outside call's breaker; "none" for an adapter without one (the
    offline provider, the file sender)."""
    breaker = getattr(outside, "breaker", None)
    return str(breaker.state) if breaker is not None else "none"


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts and times HTTP requests per route (cheap: no per-request allocation
    beyond the labels). The outermost app: WebSocket /graphql goes from here straight
    to its handler (realtime/websocket.py), which is its only route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/graphql":
            # Straight to the handler: Starlette's middleware stack would keep ~5 KiB
            # per live subscriber's connection for as long as it stays open.
            scope["app"] = starlette_app
            connection = await accept_websocket(scope, receive, send)
            if connection is not None:
                await connection.serve()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            LATENCY.labels(path).observe(time.perf_counter() - started)
            REQUESTS.labels(path, str(status)).inc()


graphql_app = GraphQLEndpoint(schema)
KNOWN_PATHS = frozenset(
    {"/graphql", "/healthz", "/readyz", "/metrics", "/demo", "/webhooks/stripe"}
)

starlette_app = Starlette(
    routes=[
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *WEBHOOK_ROUTES,
        *AUTH_ROUTES,
        *CALENDAR_FEED_ROUTES,
        *GRAPHIQL_ROUTES,
        *DEMO_ROUTES,
    ],
    lifespan=lifespan,
)
app = RequestMetrics(starlette_app)
