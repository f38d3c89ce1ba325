"""The /graphql endpoint: strawberry's ASGI view with our context, auth and error rules."""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache
from typing import Any

import orjson
from graphql import FieldNode, GraphQLError, OperationType, parse
from graphql.utilities import get_operation_ast
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types.execution import ExecutionResult

from dataloaders import DataLoaders
from domain.users.tokens import TokenRejected, TokenSigner
from graphiql import graphiql_html
from realtime.live import AnswerKey
from schema.context import Context

log = logging.getLogger("booking.graphql")

GRAPHQL_RESPONSE = "application/graphql-response+json"

# Codes we raise on purpose; anything else reaching the client is a fault.
PUBLIC_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "INVALID_INPUT", "NOT_FOUND"})


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


def authenticate(context: Context, signer: TokenSigner, header: str) -> None:
    """A missing token is anonymous; a bad or expired one fails the whole request."""
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("not a bearer token")
        context.viewer_id = signer.verify(token.strip()).user_id
    except TokenRejected:
        context.auth_failed = True


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The client's view of an error: no stack, no internals, always a code."""
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = error.path
    code = _public_code(error)
    if code is not None:
        formatted["extensions"] = {"code": code}
        field = error.extensions.get("field") if error.extensions else None
        if field:
            formatted["extensions"]["field"] = field
    elif error.original_error is None:
        # graphql-core's own: a malformed request (syntax, validation, variables).
        formatted["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED"}
    else:
        log.error("fault while resolving %s", error.path, exc_info=error.original_error)
        formatted["message"] = "Internal server error."
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return formatted


def context_for(
    state: Any,
    request: Request | WebSocket | None = None,
    response: Response | None = None,
    viewer: uuid.UUID | None = None,
) -> Context:
    """A fresh context (fresh dataloaders) for one request or one subscription event."""
    return Context(
        request=request,
        response=response,
        engine=state.engine,
        reader=state.reader,
        signer=state.signer,
        settings=state.settings,
        loaders=DataLoaders.create(state.reader),
        slot_lock=state.slot_lock,
        policy=state.policy,
        live=state.live,
        feeds=state.realtime.feeds,
        viewer_id=viewer,
    )


@lru_cache(maxsize=512)
def _reads_availability_only(query: str, operation_name: str | None) -> bool:
    """Whether the document's operation is a query of `availability` fields alone (with
    any selection under them): its whole answer depends on one live window."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return False
    fields = operation.selection_set.selections
    return bool(fields) and all(
        isinstance(f, FieldNode) and f.name.value == "availability" for f in fields
    )


def _answer_key(request_data: GraphQLRequestData, viewer: uuid.UUID | None) -> AnswerKey | None:
    """The key a kept answer of this request would have: the document, the operation,
    the variables and the viewer (answers can show the viewer more, e.g. time off)."""
    query = request_data.query
    if not query or not _reads_availability_only(query, request_data.operation_name):
        return None
    variables = orjson.dumps(request_data.variables or {}, option=orjson.OPT_SORT_KEYS)
    return (query, request_data.operation_name, variables, viewer)


class GraphQLEndpoint(GraphQL[Context, None]):
    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its assets from this server: it works without internet."""
        return HTMLResponse(graphiql_html())

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        state = request.app.state
        context = context_for(state, request, response if isinstance(response, Response) else None)
        header = request.headers.get("authorization")
        if header:
            authenticate(context, state.signer, header)
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
        key = _answer_key(request_data, context.viewer_id)
        if key is not None:
            kept = context.live.answer(key)
            if kept is not None:
                return ExecutionResult(data=kept, errors=None)
        result = await super().execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=request_data,
        )
        if key is not None and not result.errors and len(context.windows_read) == 1:
            window, version = context.windows_read[0]
            if isinstance(result.data, dict):
                context.live.keep_answer(key, window, version, result.data)
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        data: GraphQLHTTPResponse = {}
        errors = [format_error(e) for e in result.errors or ()]
        # A request that failed validation never executed: no `data` entry at all.
        if (
            result.data is not None
            or not errors
            or any(e["extensions"]["code"] != "GRAPHQL_VALIDATION_FAILED" for e in errors)
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
