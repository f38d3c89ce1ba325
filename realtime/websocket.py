"""GraphQL over WebSocket at /graphql: `graphql-transport-ws` and the legacy `graphql-ws`.

Ours rather than strawberry's handlers, because subscribers must share executions
(feeds.py) and each connection must be bounded:

- nothing runs before `connection_init` is accepted (a subscribe before it closes the
  socket with 4401 on both protocols); a bad token in it closes with 4403;
- messages are handled one at a time per connection: no task per subscribe;
- at most MAX_SUBSCRIPTIONS live subscriptions per connection;
- at most MAX_PENDING messages wait for a client; one that does not read is closed
  (1008, "not reading") instead of holding memory without bound;
- keep-alive: `ping` (graphql-transport-ws) or `ka` (graphql-ws) every KEEP_ALIVE s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FieldNode, GraphQLError, OperationType
from graphql.execution.values import get_argument_values
from starlette.types import Receive, Scope, Send
from strawberry.types import ExecutionResult

from domain.users.tokens import TokenRejected
from infra.ids import key_of
from realtime.feeds import Operation
from resolvers.availability import WindowRequest, window_request
from schema.context import over_time_limit
from schema.operation_limits import Prepared
from web.client_ip import UNKNOWN, client_ip_of

if TYPE_CHECKING:
    from realtime.hub import Hub

log = logging.getLogger(__name__)

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
INIT_TIMEOUT = 10.0
KEEP_ALIVE = 15.0
MAX_SUBSCRIPTIONS = 100
MAX_PENDING = 100
CLOSE_TIMEOUT = 5.0


class Connection:
    """One client's socket. Slotted: thousands of them sit idle for hours."""

    __slots__ = (
        "abandoned",
        "acknowledged",
        "client_ip",
        "closed",
        "closing",
        "disconnected",
        "finishing",
        "hub",
        "initialised",
        "legacy",
        "outbox",
        "receive",
        "send",
        "serving",
        "stops",
        "timer",
        "viewer",
        "writer",
    )

    def __init__(
        self, receive: Receive, send: Send, hub: Hub, protocol: str, client_ip: str = UNKNOWN
    ) -> None:
        # Plain ASGI, no Starlette WebSocket around it: less to keep per idle client.
        self.receive = receive
        self.client_ip = client_ip  # what a mutation sent here counts as, for rate limits
        self.send = send
        self.disconnected = False
        self.hub = hub
        self.legacy = protocol == LEGACY_WS
        self.viewer: uuid.UUID | None = None
        self.initialised = False
        self.acknowledged = False
        self.stops: dict[str, Callable[[], None] | None] = {}
        self.outbox: deque[str] | None = None  # made when there is something to send
        self.writer: asyncio.Task[None] | None = None
        self.closing = False
        self.closed: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None  # until connection_init
        self.serving: asyncio.Task[Any] | None = None
        self.abandoned = False  # given up on: the client reads nothing, not even a close
        self.finishing = False  # serve() is letting go already

    # ---- sending (never blocks the caller) -------------------------------------------------

    def _enqueue(self, message: dict[str, Any] | str) -> None:
        if self.closing:
            return
        if self.outbox is None:
            self.outbox = deque()
        if len(self.outbox) >= MAX_PENDING:
            self.close(1008, f"not reading: {MAX_PENDING} messages unread")
            return
        self.outbox.append(message if isinstance(message, str) else orjson.dumps(message).decode())
        if self.writer is None:
            self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            while self.outbox and not self.closing:
                await self.send({"type": "websocket.send", "text": self.outbox.popleft()})
            self.outbox = None  # idle again: nothing kept
        except (OSError, RuntimeError):  # gone: the reader sees it too
            self.closing = True
        finally:
            self.writer = None

    def send_next(self, subscription_id: str, payload: str) -> None:
        kind = "data" if self.legacy else "next"
        self._enqueue(f'{{"type":"{kind}","id":{_json(subscription_id)},"payload":{payload}}}')

    def send_errors(self, subscription_id: str, errors: list[dict[str, Any]]) -> None:
        self._finished(subscription_id)
        payload: object = errors[0] if self.legacy else errors
        self._enqueue({"type": "error", "id": subscription_id, "payload": payload})

    def send_complete(self, subscription_id: str) -> None:
        self._finished(subscription_id)
        self._enqueue({"type": "complete", "id": subscription_id})

    def keep_alive(self) -> None:
        if self.acknowledged:
            self._enqueue({"type": "ka"} if self.legacy else {"type": "ping"})

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.outbox = None
        self._stop_all()  # nothing more is rendered or queued for it from now on
        if self.writer is not None:
            self.writer.cancel()
        self.closed = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        """Sends the close frame; a client that reads nothing never lets it out (the
        socket is not writable), so after CLOSE_TIMEOUT the connection is abandoned:
        `serve` stops waiting for the client and lets go of everything."""
        with contextlib.suppress(Exception):
            if not self.disconnected:
                message = {"type": "websocket.close", "code": code, "reason": reason}
                await asyncio.wait_for(self.send(message), CLOSE_TIMEOUT)
        if self.serving is not None and not self.finishing:
            self.abandoned = True
            self.serving.cancel()

    def _stop_all(self) -> None:
        stops = list(self.stops.values())
        self.stops.clear()
        for stop in stops:
            if stop is not None:
                stop()

    # ---- receiving ----------------------------------------------------------------------

    async def serve(self) -> None:
        self.hub.connections.add(self)
        self.serving = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(INIT_TIMEOUT, self._init_timed_out)
        try:
            while not self.closing:
                event = await self.receive()
                if event["type"] == "websocket.disconnect":
                    self.disconnected = True
                    break
                text = event.get("text")
                if text is None:
                    text = (event.get("bytes") or b"").decode("utf-8", errors="replace")
                del event
                try:
                    message = orjson.loads(text)
                    kind = message["type"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    self.close(4400, "Invalid message")
                    break
                await self._handle(kind, message)
                del text, message  # nothing of the last message is kept while idle
        except (OSError, RuntimeError):
            pass
        except asyncio.CancelledError:
            if not self.abandoned:
                raise
        finally:
            self.finishing = True
            if self.timer is not None:
                self.timer.cancel()
            self.closing = True
            self._stop_all()
            if self.writer is not None:
                self.writer.cancel()
            self.hub.connections.discard(self)
            if self.closed is not None and not self.abandoned:
                await self.closed

    def _init_timed_out(self) -> None:
        if not self.initialised:
            self.close(4408, "Connection initialisation timeout")

    async def _handle(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "connection_init":
            await self._init(message.get("payload"))
        elif kind in ("subscribe", "start"):
            if not self.acknowledged:
                self.close(4401, "Unauthorized")
                return
            await self._subscribe(message.get("id"), message.get("payload"))
        elif kind in ("complete", "stop"):
            subscription_id = message.get("id")
            if isinstance(subscription_id, str) and subscription_id in self.stops:
                self._finished(subscription_id)
                if self.legacy:
                    self._enqueue({"type": "complete", "id": subscription_id})
        elif kind == "ping" and not self.legacy:
            self._enqueue({"type": "pong"})
        elif kind == "pong" and not self.legacy:
            pass
        elif kind == "connection_terminate" and self.legacy:
            self.close(1000, "")
        else:
            self.close(4400, f"Unknown message type {kind!r}")

    async def _init(self, payload: object) -> None:
        if self.initialised:
            self.close(4429, "Too many initialisation requests")
            return
        self.initialised = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        header = None
        if isinstance(payload, dict):
            header = payload.get("authorization") or payload.get("Authorization")
        if header:
            scheme, _, token = str(header).partition(" ")
            try:
                if scheme.lower() != "bearer" or not token.strip():
                    raise TokenRejected("not a bearer token")
                self.viewer = (await self.hub.signer.verify(token.strip())).user_id
            except TokenRejected:
                if self.legacy:
                    self._enqueue(
                        {
                            "type": "connection_error",
                            "payload": {"message": "The access token is invalid or expired."},
                        }
                    )
                self.close(4403, "Forbidden")
                return
        self.acknowledged = True
        self._enqueue({"type": "connection_ack"})
        if self.legacy:
            self._enqueue({"type": "ka"})

    def _finished(self, subscription_id: str) -> None:
        stop = self.stops.pop(subscription_id, None)
        if stop is not None:
            stop()

    # ---- operations ---------------------------------------------------------------------

    async def _subscribe(self, subscription_id: object, payload: object) -> None:
        if not isinstance(subscription_id, str) or not isinstance(payload, dict):
            self.close(4400, "Invalid message")
            return
        if subscription_id in self.stops:
            if self.legacy:  # graphql-ws restarts an id that is in use
                self._finished(subscription_id)
            else:
                self.close(4409, f"Subscriber for {subscription_id} already exists")
                return
        if len(self.stops) >= MAX_SUBSCRIPTIONS:
            self.send_errors(
                subscription_id,
                [
                    {
                        "message": f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection.",
                        "extensions": {"code": "RATE_LIMITED"},
                    }
                ],
            )
            return
        self.stops[subscription_id] = None
        try:
            stop = await self._start(subscription_id, payload)
        except GraphQLError as error:
            self.send_errors(subscription_id, [self.hub.format_error(error)])
            return
        except Exception as error:
            log.error("subscription failed to start", exc_info=error)
            self.send_errors(
                subscription_id,
                [
                    {
                        "message": "Internal server error.",
                        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                    }
                ],
            )
            return
        if subscription_id not in self.stops or self.closing:
            if stop is not None:
                stop()
        elif stop is not None:
            self.stops[subscription_id] = stop

    async def _start(
        self, subscription_id: str, payload: dict[str, Any]
    ) -> Callable[[], None] | None:
        """Starts the operation; the function that stops it (None: it is over already)."""
        text = payload.get("query")
        variables = payload.get("variables") or {}
        name = payload.get("operationName")
        if not isinstance(text, str) or not isinstance(variables, dict):
            raise GraphQLError("Send a query string and a variables object.")
        # The same checks as over HTTP: parsed, validated, variables, limits.
        prepared = self.hub.documents.prepare(text, name, variables)
        if isinstance(prepared, list):
            self.send_errors(subscription_id, [self.hub.format_error(e) for e in prepared])
            return None
        operation, found, coerced = prepared.operation, prepared.document, prepared.values
        if operation.operation != OperationType.SUBSCRIPTION:
            await self._execute_once(subscription_id, prepared, text, variables, name)
            return None
        root = operation.selection_set.selections[0]
        if not isinstance(root, FieldNode):
            raise GraphQLError("Name the subscription field at the root, not in a fragment.")
        subscription_type = self.hub.graphql_schema.subscription_type
        assert subscription_type is not None
        field = subscription_type.fields[root.name.value]
        args = get_argument_values(field, root, coerced)
        op = Operation(text, found, name, variables, self.viewer)
        feeds = self.hub.feeds
        if root.name.value == "availabilityChanged":

            async def request() -> WindowRequest:
                return await window_request(
                    self.hub.context(self.viewer).loaders,
                    args["serviceId"],
                    args["start"],
                    args["end"],
                    args.get("staffId"),
                    args.get("timeZone"),
                )

            return await feeds.watch_availability(op, request, self, subscription_id)
        booking_id = key_of(args["bookingId"], "Booking")
        stop = (
            await feeds.watch_booking(
                op, booking_id, args.get("manageToken"), self, subscription_id
            )
            if booking_id
            else None
        )
        if stop is None:
            raise GraphQLError("No such booking.", extensions={"code": "NOT_FOUND"})
        return stop

    async def _execute_once(
        self,
        subscription_id: str,
        prepared: Prepared,
        text: str,
        variables: dict[str, Any],
        name: str | None,
    ) -> None:
        """A query or mutation sent over the socket: one answer, then complete. Bounded
        in time like one over HTTP."""
        context = self.hub.context(self.viewer)
        context.prepared = prepared
        context.client_ip = self.client_ip
        limit = context.settings.operation_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                result = await self.hub.schema.execute(
                    text, variable_values=variables, context_value=context, operation_name=name
                )
        except TimeoutError:
            result = ExecutionResult(data=None, errors=[over_time_limit(limit)])
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [self.hub.format_error(e) for e in result.errors]
        self.stops[subscription_id] = None
        self.send_next(subscription_id, orjson.dumps(body).decode())
        self.send_complete(subscription_id)


def _json(value: str) -> str:
    return orjson.dumps(value).decode()


async def accept(scope: Scope, receive: Receive, send: Send) -> Connection | None:
    """The handshake of WebSocket /graphql: the accepted connection, for the caller to
    `serve()` (app.py; returning first spares every idle client this frame), or None."""
    hub: Hub = scope["app"].state.realtime
    if (await receive())["type"] != "websocket.connect":
        return None
    offered = scope.get("subprotocols") or []
    protocol = next((p for p in (TRANSPORT_WS, LEGACY_WS) if p in offered), None)
    if protocol is None:
        await send(
            {"type": "websocket.close", "code": 4406, "reason": "Subprotocol not acceptable"}
        )
        return None
    await send({"type": "websocket.accept", "subprotocol": protocol})
    client_ip = client_ip_of(scope, scope["app"].state.settings.trusted_proxies)
    # Nothing of the handshake is read again (the token comes in connection_init), and
    # an idle subscriber should not keep it for hours: only what uvicorn logs stays.
    for key in ("headers", "state", "extensions", "app", "subprotocols", "raw_path"):
        scope.pop(key, None)
    return Connection(receive, send, hub, protocol, client_ip)
