"""A loopback stand-in for Stripe's API: the PaymentIntent and Refund calls the app makes,
answered as Stripe answers them (objects, error JSON, Idempotency-Key replay), plus the
faults, state changes and signed webhook deliveries a test needs.

The real `stripe` library talks to it (`base_addresses={"api": base_url}` in process,
STRIPE_API_BASE in app subprocesses), so it is a real socket server on 127.0.0.1, served
by uvicorn in the test's event loop:

    async with StripeStandIn.running() as stripe_api:
        async with stripe_api.client() as client:  # a StripeClient aimed at it
            intent = await client.v1.payment_intents.create_async(params={...})
        stripe_api.succeed(intent.id)
        await stripe_api.deliver(url, stripe_api.event_for("payment_intent.succeeded",
                                 intent.id), secret)
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from domain.payments.stripe_provider import FormHTTPXClient
from tests.conftest import free_port

API_VERSION = "2024-06-20"
# The statuses Stripe lets POST /v1/payment_intents/{id}/cancel leave.
CANCELLABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
ALPHANUMERIC = string.ascii_letters + string.digits

JSON = dict[str, Any]


def random_text(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{random_text(length)}"


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Failure(Exception):
    """An error answer in Stripe's shape. `stored` is False for what Stripe rejects before an
    endpoint runs (bad parameters, unknown URLs): no idempotent result is saved for those."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        stored: bool = True,
        extra: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.stored = stored
        error: JSON = {"type": type_, "message": message}
        if code is not None:
            error["code"] = code
        if param is not None:
            error["param"] = param
        self.body: JSON = {"error": {**error, **(extra or {})}}


def invalid(message: str, *, code: str | None = None, param: str | None = None) -> Failure:
    return Failure(400, "invalid_request_error", message, code=code, param=param, stored=False)


def parse_params(pairs: list[tuple[str, str]]) -> JSON:
    """Stripe's form encoding, nested back: metadata[booking_id]=b1 becomes
    {"metadata": {"booking_id": "b1"}} and expand[0]=x becomes {"expand": ["x"]}.
    Values stay strings, as they arrive."""
    params: JSON = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head, *rest.removesuffix("]").split("][")] if rest else [head]
        node = params
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    result: JSON = _lists(params)
    return result


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _lists(item) for key, item in value.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def positive_integer(params: JSON, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.isdigit():
        raise invalid(f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    if int(raw) < 1:
        raise invalid(
            "This value must be greater than or equal to 1.",
            code="parameter_invalid_integer",
            param=name,
        )
    return int(raw)


def metadata(params: JSON) -> dict[str, str]:
    value = params.get("metadata")
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass
class Recorded:
    """One request as the stand-in saw it; `status` and `replayed` are filled in when it
    is answered (None while it is still running, e.g. hanging)."""

    method: str
    path: str
    idempotency_key: str | None
    params: JSON
    status: int | None = None
    replayed: bool = False


@dataclass
class _Stored:
    """The first answer to an Idempotency-Key, replayed as is for the same request."""

    method: str
    path: str
    params: JSON
    status: int
    body: bytes
    request_id: str


@dataclass
class _Fault:
    remaining: int
    path_prefix: str | None
    status: int = 500
    seconds: float = 0.0
    when: Literal["before", "after"] = "before"
    # Exactly this request (say POST /v1/payment_intents, creating one), so the app's
    # background calls (retrieve, cancel) beside the test's own are left alone.
    path: str | None = None
    method: str | None = None

    def matches(self, record: Recorded) -> bool:
        return (
            (self.path_prefix is None or record.path.startswith(self.path_prefix))
            and (self.path is None or record.path == self.path)
            and (self.method is None or record.method == self.method)
        )


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """`app` on a free loopback port, served in this event loop; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # A backstop: StripeStandIn wakes its hanging requests when it stops.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
                raise RuntimeError(f"uvicorn on port {port} stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


Handler = Callable[..., JSON]


class StripeStandIn:
    """Stripe's API for the app's payment calls, with test controls. Every request is in
    `requests`; `intents`, `refunds` hold the live objects; `created_intents`,
    `created_refunds` count what was really created (replays create nothing)."""

    def __init__(self) -> None:
        self.base_url = ""  # set by running()
        self.requests: list[Recorded] = []
        self.intents: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.created_intents = 0
        self.created_refunds = 0
        self._refunded: dict[str, int] = {}
        self._idempotent: dict[tuple[str, str], _Stored] = {}
        self._failures: list[_Fault] = []
        self._hangs: list[_Fault] = []
        self._down: int | None = None
        self._stopping = asyncio.Event()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"/v1/payment_intents"), self._create_intent),
            ("GET", re.compile(r"/v1/payment_intents/([^/]+)"), self._retrieve_intent),
            ("POST", re.compile(r"/v1/payment_intents/([^/]+)/cancel"), self._cancel_intent),
            ("POST", re.compile(r"/v1/refunds"), self._create_refund),
            ("GET", re.compile(r"/v1/refunds/([^/]+)"), self._retrieve_refund),
        ]
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE"])]
        )

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncIterator[StripeStandIn]:
        stand_in = cls()
        async with serving(stand_in.app) as base_url:
            stand_in.base_url = base_url
            try:
                yield stand_in
            finally:
                stand_in._stopping.set()  # hanging requests answer now, not after their sleep

    @asynccontextmanager
    async def client(
        self,
        api_key: str = "sk_test_123",
        *,
        call_seconds: float = 10.0,
        max_network_retries: int = 0,
    ) -> AsyncIterator[stripe.StripeClient]:
        """A StripeClient aimed at the stand-in (use its *_async methods), closed afterwards."""
        http_client = FormHTTPXClient(timeout=call_seconds)
        try:
            yield stripe.StripeClient(
                api_key,
                base_addresses={"api": self.base_url},
                http_client=http_client,
                max_network_retries=max_network_retries,
            )
        finally:
            await http_client.close_async()

    # ---- failure injection -------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        path_prefix: str | None = None,
        *,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next `count` requests to `path_prefix` (any path if None; exactly `path`
        and `method` when given) answer a Stripe api_error with `status`, doing nothing and
        saving nothing for their Idempotency-Key."""
        self._failures.append(_Fault(count, path_prefix, status=status, path=path, method=method))

    def hang_next(
        self,
        count: int = 1,
        seconds: float = 30.0,
        path_prefix: str | None = None,
        *,
        when: Literal["before", "after"] = "before",
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next `count` matching requests (as for fail_next) wait `seconds` before they
        are handled ("before": as if the network held them; a retry meanwhile is served
        first) or after ("after": the work is done and its answer saved, only the answer is
        late)."""
        self._hangs.append(
            _Fault(count, path_prefix, seconds=seconds, when=when, path=path, method=method)
        )

    def down(self, status: int = 503) -> None:
        """Every request answers an api_error with `status` until up()."""
        self._down = status

    def up(self) -> None:
        self._down = None

    def heal(self) -> None:
        """No more injected failures, hangs or outage: what a test leaves behind is gone."""
        self._failures.clear()
        self._hangs.clear()
        self._down = None

    # ---- what the customer's browser and Stripe do to an intent ------------------------

    def intent(self, intent_id: str) -> JSON:
        return copy.deepcopy(self.intents[intent_id])

    def succeed(self, intent_id: str) -> JSON:
        intent = self._live(intent_id)
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]
        intent["latest_charge"] = intent["latest_charge"] or new_id("ch")
        intent["last_payment_error"] = None
        return self.intent(intent_id)

    def fail(self, intent_id: str, message: str = "Your card was declined.") -> JSON:
        """A declined attempt: Stripe puts the intent back to requires_payment_method."""
        intent = self._live(intent_id)
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": message,
        }
        return self.intent(intent_id)

    def processing(self, intent_id: str) -> JSON:
        self._live(intent_id)["status"] = "processing"
        return self.intent(intent_id)

    def amount_refunded(self, intent_id: str) -> int:
        return self._refunded.get(intent_id, 0)

    def charge_of(self, intent_id: str) -> JSON:
        """The charge of a succeeded intent, as a charge.refunded event carries it."""
        intent = self.intents[intent_id]
        if intent["latest_charge"] is None:
            raise ValueError(f"{intent_id} has no charge: succeed() it first")
        refunded = self.amount_refunded(intent_id)
        return {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount_received"],
            "amount_refunded": refunded,
            "captured": True,
            "created": intent["created"],
            "currency": intent["currency"],
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "paid": True,
            "payment_intent": intent_id,
            "refunded": refunded >= intent["amount_received"],
            "status": "succeeded",
        }

    def _live(self, intent_id: str) -> JSON:
        intent = self.intents[intent_id]
        if intent["status"] in ("succeeded", "canceled"):
            # Stripe never moves an intent out of these; a test doing so tests nothing real.
            raise ValueError(f"{intent_id} is {intent['status']}: Stripe would not change it")
        return intent

    # ---- webhooks ----------------------------------------------------------------------

    def event(
        self, type: str, obj: JSON, *, event_id: str | None = None, created: int | None = None
    ) -> JSON:
        return {
            "id": event_id or new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    def event_for(self, type: str, intent_id: str, **kwargs: Any) -> JSON:
        """payment_intent.* events carry the intent as it is now, charge.* its charge."""
        obj = self.charge_of(intent_id) if type.startswith("charge.") else self.intent(intent_id)
        return self.event(type, obj, **kwargs)

    @staticmethod
    def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
        """The Stripe-Signature header: HMAC-SHA256 of "{t}.{payload}" keyed with the secret."""
        t = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256)
        return f"t={t},v1={digest.hexdigest()}"

    async def deliver(
        self,
        url: str,
        event: JSON,
        secret: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POSTs the event as Stripe does; `signature` replaces the real one (forgeries)."""
        payload = compact(event)
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": signature or self.sign(payload, secret, timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(url, content=payload, headers=headers)

    # ---- serving -----------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        body = (await request.body()).decode()
        query = body if request.method == "POST" else request.url.query
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        record = Recorded(
            request.method,
            request.url.path,
            key,
            parse_params(parse_qsl(query, keep_blank_values=True)),
        )
        self.requests.append(record)
        answer = await self._answer(request, record)
        record.status = answer.status
        headers = {"Request-Id": new_id("req", 14), **answer.headers}
        if key is not None:
            headers["Idempotency-Key"] = key  # Stripe echoes it
        return Response(answer.body, answer.status, headers, media_type="application/json")

    async def _answer(self, request: Request, record: Recorded) -> _Answer:
        if self._down is not None:
            return self._api_error(self._down)
        api_key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not api_key.startswith("sk_"):
            return _failure(
                Failure(401, "authentication_error", f"Invalid API Key provided: {api_key!r}")
            )
        failure = _take(self._failures, record)
        if failure is not None:
            return self._api_error(failure.status)
        hang = _take(self._hangs, record)
        if hang is not None and hang.when == "before" and await self._sleep(hang.seconds):
            return self._api_error(503)  # stopped while hanging: nobody is listening
        answer = self._handle(api_key, record)
        if hang is not None and hang.when == "after":
            await self._sleep(hang.seconds)
        return answer

    async def _sleep(self, seconds: float) -> bool:
        """Waits `seconds`, less if the stand-in stops; True when it stopped."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    def _handle(self, api_key: str, record: Recorded) -> _Answer:
        """Runs the request without awaiting, so an Idempotency-Key's check and its saved
        answer cannot interleave with a concurrent request's."""
        stored_under = (api_key, record.idempotency_key) if record.idempotency_key else None
        if stored_under is not None and stored_under in self._idempotent:
            return self._replay(self._idempotent[stored_under], record)
        try:
            handler, ids = self._route(record.method, record.path)
            status, body = 200, compact(handler(record.params, *ids))
        except Failure as failure:
            if not failure.stored:
                return _failure(failure)
            status, body = failure.status, compact(failure.body)
        request_id = new_id("req", 14)
        if stored_under is not None:
            self._idempotent[stored_under] = _Stored(
                record.method, record.path, record.params, status, body, request_id
            )
        return _Answer(status, body, {"Request-Id": request_id})

    def _replay(self, stored: _Stored, record: Recorded) -> _Answer:
        key = record.idempotency_key
        if (stored.method, stored.path) != (record.method, record.path):
            message = (
                "Keys for idempotent requests can only be used for the same endpoint they "
                f"were first used for ('{stored.method} {stored.path}' vs "
                f"'{record.method} {record.path}'). Try using a key other than '{key}' if "
                "you meant to execute a different request."
            )
            return _failure(Failure(400, "idempotency_error", message))
        if stored.params != record.params:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request."
            )
            return _failure(Failure(400, "idempotency_error", message))
        record.replayed = True
        headers = {"Idempotent-Replayed": "true", "Original-Request": stored.request_id}
        return _Answer(stored.status, stored.body, headers)

    def _route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler, match.groups()
        raise Failure(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            stored=False,
        )

    def _api_error(self, status: int) -> _Answer:
        message = "An unknown error occurred (injected by the test's Stripe stand-in)."
        return _failure(Failure(status, "api_error", message))

    # ---- endpoints ---------------------------------------------------------------------

    def _create_intent(self, params: JSON) -> JSON:
        amount = positive_integer(params, "amount")
        if amount is None:
            raise invalid(
                "Missing required param: amount.", code="parameter_missing", param="amount"
            )
        currency = params.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise invalid(
                "Missing required param: currency." if currency is None else "Invalid currency",
                code="parameter_missing" if currency is None else "parameter_invalid_string",
                param="currency",
            )
        automatic = params.get("automatic_payment_methods")
        intent_id = new_id("pi")
        intent: JSON = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": (
                {"enabled": automatic.get("enabled") == "true"}
                if isinstance(automatic, dict)
                else None
            ),
            "canceled_at": None,
            "cancellation_reason": None,
            "client_secret": f"{intent_id}_secret_{random_text(25)}",
            "created": int(time.time()),
            "currency": currency.lower(),
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata(params),
            "payment_method": None,
            "status": "requires_payment_method",
        }
        self.intents[intent_id] = intent
        self.created_intents += 1
        return self.intent(intent_id)

    def _intent(self, intent_id: str, param: str = "intent") -> JSON:
        if intent_id not in self.intents:
            raise Failure(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param=param,
                stored=False,
            )
        return self.intents[intent_id]

    def _retrieve_intent(self, params: JSON, intent_id: str) -> JSON:
        return copy.deepcopy(self._intent(intent_id))

    def _cancel_intent(self, params: JSON, intent_id: str) -> JSON:
        intent = self._intent(intent_id)
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise invalid(
                f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}",
                param="cancellation_reason",
            )
        if intent["status"] not in CANCELLABLE:
            raise Failure(
                400,
                "invalid_request_error",
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                f"may be canceled: {', '.join(CANCELLABLE)}.",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": copy.deepcopy(intent)},
            )
        intent.update(status="canceled", canceled_at=int(time.time()), cancellation_reason=reason)
        return copy.deepcopy(intent)

    def _create_refund(self, params: JSON) -> JSON:
        intent_id = params.get("payment_intent")
        if not isinstance(intent_id, str) or not intent_id:
            raise invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        amount = positive_integer(params, "amount")
        intent = self._intent(intent_id, param="payment_intent")
        if intent["status"] != "succeeded":
            raise Failure(
                400,
                "invalid_request_error",
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
            )
        left = intent["amount_received"] - self.amount_refunded(intent_id)
        if left <= 0:
            raise Failure(
                400,
                "invalid_request_error",
                f"Charge {intent['latest_charge']} has already been refunded.",
                code="charge_already_refunded",
            )
        if amount is not None and amount > left:
            raise Failure(
                400,
                "invalid_request_error",
                f"Refund amount ({amount} {intent['currency']}) is greater than the unrefunded "
                f"amount on the charge ({left} {intent['currency']}).",
                code="amount_too_large",
                param="amount",
            )
        refund: JSON = {
            "id": new_id("re"),
            "object": "refund",
            "amount": left if amount is None else amount,
            "balance_transaction": None,
            "charge": intent["latest_charge"],
            "created": int(time.time()),
            "currency": intent["currency"],
            "metadata": metadata(params),
            "payment_intent": intent_id,
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self._refunded[intent_id] = self.amount_refunded(intent_id) + refund["amount"]
        self.refunds[refund["id"]] = refund
        self.created_refunds += 1
        return copy.deepcopy(refund)

    def _retrieve_refund(self, params: JSON, refund_id: str) -> JSON:
        if refund_id not in self.refunds:
            raise Failure(
                404,
                "invalid_request_error",
                f"No such refund: '{refund_id}'",
                code="resource_missing",
                param="id",
                stored=False,
            )
        return copy.deepcopy(self.refunds[refund_id])


def _take(faults: list[_Fault], record: Recorded) -> _Fault | None:
    """The first fault that applies to the request, used up by it."""
    for fault in faults:
        if fault.matches(record):
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
            return fault
    return None


def _failure(failure: Failure) -> _Answer:
    return _Answer(failure.status, compact(failure.body))
