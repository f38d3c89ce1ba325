"""The /graphql endpoint: strawberry's ASGI view with our context, auth and error rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
import warnings
from typing import Any

import asyncpg
import orjson
import sqlalchemy.exc
from cross_web import HTTPException
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types.execution import ExecutionResult

from dataloaders import DataLoaders
from dataloaders.share import ConnectionShare
from domain.availability.live import AnswerKey
from domain.users.tokens import TokenRejected, TokenSigner
from schema.context import TIMEOUT, Context, over_time_limit, timed_out
from schema.operation_limits import (
    GRAPHQL_PARSE_FAILED,
    GRAPHQL_VALIDATION_FAILED,
    REQUEST_ERROR_CODES,
    Documents,
    Limits,
    Prepared,
)
from web.client_ip import UNKNOWN, client_ip_of
from web.graphiql import graphiql_html

log = logging.getLogger("booking.graphql")

# Cancelling an execution (the time limit, a client gone) leaves graphql-core's gathered
# field coroutines (and strawberry's resolver wrappers) unawaited: nothing runs or leaks,
# but each would print a warning. Which ones are pending varies, so match by class.
warnings.filterwarnings(
    "ignore",
    message=r"coroutine '(Executor|GraphQLCoreConverter)\.[^']*' was never awaited",
    category=RuntimeWarning,
)

GRAPHQL_RESPONSE = "application/graphql-response+json"

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
# Codes we raise on purpose; anything else reaching the client is a fault.
PUBLIC_CODES = (
    frozenset({"UNAUTHENTICATED", "FORBIDDEN", "INVALID_INPUT", "NOT_FOUND", TIMEOUT})
    | {SERVICE_UNAVAILABLE, "RATE_LIMITED"}
    | REQUEST_ERROR_CODES
)
# What the database (or the network to it) being away looks like: not a fault of ours
# to trace, and worth a retry by the client.
OUTAGES = (
    ConnectionError,  # refused, reset, aborted: not every OSError is an outage
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)
# A request id the client sent is kept when it looks like one (it ends up in our logs).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _outage(error: GraphQLError) -> BaseException | None:
    """The database outage behind an error, if that is what it is."""
    seen: BaseException | None = error.original_error
    while seen is not None:
        if isinstance(seen, OUTAGES) or (
            isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated
        ):
            return seen
        seen = getattr(seen, "original_error", None) or seen.__cause__
    return None


def _public_code(error: GraphQLError) -> str | None:
    """The code of an error we raised on purpose, following graphql-core's wrapping."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, GraphQLError) and seen.extensions:
            code = seen.extensions.get("code")
            if code in PUBLIC_CODES:
                return str(code)
        seen = getattr(seen, "original_error", None)
    return None


async def authenticate(context: Context, signer: TokenSigner, header: str) -> None:
    """A missing token is anonymous; a bad or expired one fails the whole request."""
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("not a bearer token")
        context.viewer_id = (await signer.verify(token.strip())).user_id
    except TokenRejected:
        context.auth_failed = True


def format_error(error: GraphQLError, request_id: str | None = None) -> dict[str, Any]:
    """The client's view of an error: no stack, no internals, always a code. Logged
    here, once: the client's mistakes at INFO in one line, our faults at ERROR with
    their traceback and the request id the client is given to quote."""
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = error.path
    code = _public_code(error)
    if code is None and error.original_error is None:
        # graphql-core's own: a malformed request (syntax, validation).
        code = (
            GRAPHQL_PARSE_FAILED
            if isinstance(error, GraphQLSyntaxError)
            else GRAPHQL_VALIDATION_FAILED
        )
    if code is not None:
        formatted["extensions"] = {"code": code}
        if error.extensions:
            for name in ("field", "limit", "figure", "max", "retryAfterSeconds"):
                if name in error.extensions:
                    formatted["extensions"][name] = error.extensions[name]
        log.info("%s %s at %s: %s", request_id or "-", code, error.path or "-", error.message)
    elif (outage := _outage(error)) is not None:
        log.warning("%s database unavailable at %s: %r", request_id or "-", error.path, outage)
        formatted["message"] = "The service is briefly unavailable; try again in a moment."
        formatted["extensions"] = {"code": SERVICE_UNAVAILABLE}
    else:
        log.error(
            "%s fault while resolving %s",
            request_id or "-",
            error.path,
            exc_info=error.original_error,
        )
        formatted["message"] = "Internal server error."
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
        if request_id:
            formatted["extensions"]["requestId"] = request_id
    return formatted


def documents_for(state: Any) -> Documents:
    """The checked documents of this app, with the limits of its settings."""
    documents: Documents | None = getattr(state, "documents", None)
    if documents is None:
        from schema.root import schema

        settings = state.settings
        limits = Limits(
            depth=settings.max_depth,
            aliases=settings.max_aliases,
            tokens=settings.max_tokens,
            directives=settings.max_directives,
            cost=settings.max_cost,
        )
        documents = Documents(schema._schema, limits)
        state.documents = documents
    return documents


async def _client_gone(request: Request) -> None:
    """Returns when the client has disconnected (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def context_for(
    state: Any,
    request: Request | WebSocket | None = None,
    response: Response | None = None,
    viewer: uuid.UUID | None = None,
) -> Context:
    """A fresh context (fresh dataloaders, its own share of the pool) for one request
    or one subscription event."""
    share = ConnectionShare(state.engine, state.reader, state.settings.request_connections)
    return Context(
        request=request,
        response=response,
        engine=state.engine,
        reader=state.reader,
        signer=state.signer,
        mailer=state.mailer,
        settings=state.settings,
        share=share,
        loaders=DataLoaders.create(share),
        slot_lock=state.slot_lock,
        policy=state.policy,
        payments=state.payments,
        live=state.live,
        feeds=state.realtime.feeds,
        rate_limits=state.rate_limits,
        phone_codes=state.phone_codes,
        viewer_id=viewer,
        # Once per request: per-address rate limits count by it.
        client_ip=(
            client_ip_of(request.scope, state.settings.trusted_proxies)
            if request is not None
            else UNKNOWN
        ),
    )


def _reads_availability_only(operation: OperationDefinitionNode) -> bool:
    """Whether the operation is a query of `availability` fields alone (with any
    selection under them): its whole answer depends on one live window."""
    if operation.operation != OperationType.QUERY:
        return False
    fields = operation.selection_set.selections
    return bool(fields) and all(
        isinstance(f, FieldNode) and f.name.value == "availability" for f in fields
    )


def _answer_key(
    request_data: GraphQLRequestData, prepared: Prepared, viewer: uuid.UUID | None
) -> AnswerKey | None:
    """The key a kept answer of this request would have: the document, the operation,
    the variables and the viewer (answers can show the viewer more, e.g. time off)."""
    if not _reads_availability_only(prepared.operation):
        return None
    variables = orjson.dumps(request_data.variables or {}, option=orjson.OPT_SORT_KEYS)
    return (request_data.query or "", request_data.operation_name, variables, viewer)


class GraphQLEndpoint(GraphQL[Context, None]):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Hung up before its request was read: nobody to answer, and nothing went wrong.
        with contextlib.suppress(ClientDisconnect):
            await super().__call__(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its assets from this server: it works without internet."""
        return HTMLResponse(graphiql_html())

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        state = request.app.state
        context = context_for(state, request, response if isinstance(response, Response) else None)
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        header = request.headers.get("authorization")
        if header:
            await authenticate(context, state.signer, header)
        return context

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if context.auth_failed:
            return ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "The access token is invalid or expired; refresh the session or sign in.",
                        extensions={"code": "UNAUTHENTICATED"},
                    )
                ],
            )
        key = None
        flight = None
        if request_data.query is not None:
            # Checked first (limits, variables), even for answers kept from before.
            prepared = documents_for(request.app.state).prepare(
                request_data.query, request_data.operation_name, request_data.variables
            )
            if isinstance(prepared, list):
                return ExecutionResult(data=None, errors=prepared)
            context.prepared = prepared
            key = _answer_key(request_data, prepared, context.viewer_id)
            if key is not None:
                kept = context.live.answer(key)
                making = context.live.answering(key) if kept is None else None
                if making is not None:
                    # An earlier asker is making this very answer: awaited, not made
                    # again (within this request's time limit, while its client stays).
                    context.live.join_answer(making)

                    async def awaited() -> ExecutionResult:
                        assert making is not None
                        shared = await context.live.shared_answer(making)
                        return ExecutionResult(data=shared, errors=None)

                    waited = await self._bounded(request, context, awaited())
                    if waited.errors:
                        return waited
                    kept = waited.data
                if kept is not None:
                    return ExecutionResult(data=kept, errors=None)
                if context.live.answering(key) is None:
                    # The first to ask: those asking meanwhile await this answer.
                    flight = context.live.start_answer(key)
        result = None
        try:
            result = await self._bounded(
                request,
                context,
                super().execute_single(
                    request=request,
                    request_adapter=request_adapter,
                    sub_response=sub_response,
                    context=context,
                    root_value=root_value,
                    request_data=request_data,
                ),
            )
        finally:
            if key is not None and flight is not None:
                data = None
                if result is not None and not result.errors and isinstance(result.data, dict):
                    data = result.data
                # Kept (once) when it read exactly one live window.
                context.live.end_answer(key, flight, data, context.windows_read)
        return result

    async def _bounded(self, request: Request, context: Context, execution: Any) -> ExecutionResult:
        """Runs the execution until it ends, the time limit passes or the client goes
        away; in the last two cases it is cancelled, with every resolver and batch
        load under it, and its connections return to the pool before we answer."""
        task: asyncio.Task[ExecutionResult] = asyncio.ensure_future(execution)
        watcher = asyncio.ensure_future(_client_gone(request))
        limit = context.settings.operation_timeout_seconds
        try:
            done, _ = await asyncio.wait(
                (task, watcher), timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            watcher.cancel()
        if task in done:
            return task.result()
        task.cancel()
        # Cancelled work unwinds at once (its connections back in the pool); the bound
        # only keeps a resolver that ignored its cancellation from holding the answer.
        await asyncio.wait((task,), timeout=1.0)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: whatever it was, the answer below stands
        if watcher in done:
            log.info("%s client went away: execution cancelled", request.state.request_id)
            error = timed_out("The client went away; the operation was cancelled.")
        else:
            error = over_time_limit(limit)
        return ExecutionResult(data=None, errors=[error])

    def parse_json(self, data: str | bytes) -> object:
        """Any JSON that is not an object is the client's mistake: 400, said plainly."""
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):  # a list is a batch: refused as such
            raise HTTPException(400, 'Send a JSON object, such as {"query": "{ __typename }"}.')
        return parsed

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        data: GraphQLHTTPResponse = {}
        request_id = getattr(request.state, "request_id", None)
        errors = [format_error(e, request_id) for e in result.errors or ()]
        # A request refused before execution never executed: no `data` entry at all.
        if (
            result.data is not None
            or not errors
            or any(e["extensions"]["code"] not in REQUEST_ERROR_CODES for e in errors)
        ):
            data["data"] = result.data
        if errors:
            data["errors"] = list[object](errors)
        if result.extensions:
            data["extensions"] = result.extensions
        return data

    def _handle_errors(self, errors: Any, response_data: Any) -> None:
        """Logged in format_error instead, once, with the cause."""

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # GraphQL over HTTP: answer in the newer media type when the client accepts it.
        if GRAPHQL_RESPONSE in request.headers.get("accept", ""):
            sub_response.media_type = GRAPHQL_RESPONSE
        return sub_response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = Response(
            self.encode_json(response_data),
            status_code=sub_response.status_code or 200,
            media_type=sub_response.media_type or "application/json",
        )
        if (
            sub_response.media_type == GRAPHQL_RESPONSE
            and isinstance(response_data, dict)
            and "data" not in response_data
        ):
            response.status_code = 400  # a request error: nothing was executed
        response.headers.raw.extend(
            (k, v) for k, v in sub_response.headers.raw if k != b"content-type"
        )
        return response
