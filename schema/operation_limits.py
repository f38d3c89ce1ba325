"""What one operation may ask, checked before it runs.

Every document is parsed (with a token limit), validated, and measured once per text
(schema/operation_cost.py), then kept. Only then is it measured against the limits, so
nothing in the document itself (an operation named `__schema`, fragments, aliases) can
dodge them: the walk looks at what would execute, fragments expanded, never at names.

Ours rather than strawberry's QueryDepthLimiter / MaxAliasesLimiter / MaxTokensLimiter:
those cover three of the five limits, answer with their own messages and codes, and
none estimates cost; one walk gives all the figures and one refusal shape.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.utilities import get_operation_ast

from schema.operation_cost import LIST_SIZES, Figures, Measure, introspection_sizes

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
BAD_USER_INPUT = "BAD_USER_INPUT"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
REQUEST_ERROR_CODES = frozenset(
    {QUERY_TOO_COMPLEX, BAD_USER_INPUT, GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED}
)

DOCUMENTS_KEPT = 512


@dataclass(frozen=True, slots=True)
class Limits:
    depth: int = 15
    aliases: int = 30
    tokens: int = 2_000
    directives: int = 50
    cost: int = 100_000


@dataclass(slots=True)
class Prepared:
    """A document fit to execute, its operation and the variables coerced for it."""

    document: DocumentNode
    operation: OperationDefinitionNode
    values: VariableValues

    @property
    def variables(self) -> dict[str, Any]:
        return self.values.coerced


REFUSALS = {
    "depth": "The operation nests fields {figure:,} deep; the depth limit is {limit:,}.",
    "aliases": "The operation uses {figure:,} aliases; the aliases limit is {limit:,}.",
    "directives": "The operation uses {figure:,} directives; the directives limit is {limit:,}.",
    "cost": (
        "The operation's cost is {figure:,} (each field counts once per item of the lists"
        " it is in, a list counting at its `first`); the cost limit is {limit:,}."
    ),
    "tokens": "The document has more than {figure:,} tokens; the tokens limit is {limit:,}.",
}


def too_complex(what: str, figure: int, limit: int) -> GraphQLError:
    return GraphQLError(
        REFUSALS[what].format(figure=figure, limit=limit),
        extensions={"code": QUERY_TOO_COMPLEX, "limit": what, "figure": figure, "max": limit},
    )


def request_error(message: str, code: str, source: GraphQLError | None = None) -> GraphQLError:
    """A request error keeps graphql-core's message and locations, with our code."""
    return GraphQLError(
        message,
        nodes=source.nodes if source else None,
        source=source.source if source else None,
        positions=source.positions if source else None,
        extensions={"code": code},
    )


# An operation's name and the variables (page sizes, window ends) it was measured with.
FiguresKey = tuple[str | None, tuple[tuple[str, int | datetime], ...]]


def _coercion_code(error: GraphQLError) -> str:
    """A value our scalars refuse (a date-time without offset) keeps the code they
    give it (INVALID_INPUT); a variable that does not fit its type is BAD_USER_INPUT."""
    cause = error.original_error
    if isinstance(cause, GraphQLError) and cause.extensions and "code" in cause.extensions:
        return str(cause.extensions["code"])
    return BAD_USER_INPUT


@dataclass(slots=True)
class _Known:
    document: DocumentNode | None
    errors: list[GraphQLError]
    figures: dict[FiguresKey, Figures] = field(default_factory=dict)


class Documents:
    """Checked documents by text: SPAs send the same few again and again."""

    def __init__(self, schema: GraphQLSchema, limits: Limits, kept: int = DOCUMENTS_KEPT) -> None:
        self.schema = schema
        self.limits = limits
        self.kept: OrderedDict[str, _Known] = OrderedDict()
        self.size_limit = kept
        self.sizes = dict(LIST_SIZES) | introspection_sizes(schema)

    def prepare(
        self, text: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> Prepared | list[GraphQLError]:
        known = self._known(text)
        if known.document is None:
            return known.errors
        operation = get_operation_ast(known.document, operation_name)
        if operation is None:
            message = (
                f"Unknown operation named '{operation_name}'."
                if operation_name
                else "Must provide operation name if query contains multiple operations."
            )
            return [request_error(message, GRAPHQL_VALIDATION_FAILED)]
        values = get_variable_values(
            self.schema, operation.variable_definitions or (), variables or {}, max_errors=20
        )
        if isinstance(values, list):
            return [request_error(e.message, _coercion_code(e), e) for e in values]
        refused = self._refusals(known, operation, values.coerced)
        if refused:
            return refused
        return Prepared(known.document, operation, values)

    def _known(self, text: str) -> _Known:
        known = self.kept.get(text)
        if known is not None:
            self.kept.move_to_end(text)
            return known
        known = self._check(text)
        self.kept[text] = known
        if len(self.kept) > self.size_limit:
            self.kept.popitem(last=False)
        return known

    def _check(self, text: str) -> _Known:
        try:
            document = parse(text, max_tokens=self.limits.tokens)
        except GraphQLSyntaxError as error:
            if "Document contains more than" in error.message:
                limit = self.limits.tokens
                return _Known(None, [too_complex("tokens", limit, limit)])
            return _Known(None, [request_error(error.message, GRAPHQL_PARSE_FAILED, error)])
        errors = validate(self.schema, document)
        if errors:
            return _Known(
                None, [request_error(e.message, GRAPHQL_VALIDATION_FAILED, e) for e in errors]
            )
        return _Known(document, [])

    def _refusals(
        self, known: _Known, operation: OperationDefinitionNode, variables: dict[str, Any]
    ) -> list[GraphQLError]:
        assert known.document is not None
        name = operation.name.value if operation.name else None
        # Only page sizes and window ends change the figures.
        used = tuple(sorted((k, v) for k, v in variables.items() if isinstance(v, int | datetime)))
        figures = known.figures.get((name, used))
        if figures is None:
            measure = Measure(self.schema, known.document, variables, self.sizes)
            try:
                figures = measure.operation(operation)
            except RecursionError:  # graphql-core parses ~200 levels; this is far past 15
                return [too_complex("depth", 200, self.limits.depth)]
            if len(known.figures) < 64:  # per document: variables vary, memory must not
                known.figures[(name, used)] = figures
        limits = self.limits
        refusals = []
        for what, figure, limit in (
            ("depth", figures.depth, limits.depth),
            ("aliases", figures.aliases, limits.aliases),
            ("directives", figures.directives, limits.directives),
            ("cost", figures.cost, limits.cost),
        ):
            if figure > limit:
                refusals.append(too_complex(what, figure, limit))
        return refusals
