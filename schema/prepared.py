"""Strawberry's parse and validate steps for a document the HTTP view checked already
(operation_limits.Documents: parsed, validated, measured, kept): it is executed as it
is, with no second parse or validation. Other callers of the schema parse and validate
through the caches below."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import ParserCache, ValidationCache


class PreparedDocument(ParserCache):
    def on_parse(self) -> Iterator[None]:
        prepared = getattr(self.execution_context.context, "prepared", None)
        if prepared is None:
            yield from super().on_parse()
            return
        self.execution_context.graphql_document = prepared.document
        yield


class PreparedValidation(ValidationCache):
    def on_validate(self) -> Iterator[None]:
        if getattr(self.execution_context.context, "prepared", None) is None:
            yield from super().on_validate()
            return
        self.execution_context.pre_execution_errors = []
        yield
