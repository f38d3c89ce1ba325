"""The access rules enforced: `enforce` puts each field's rule of schema/access_rules.py
(`RULES`) in front of its resolver in graphql-core's schema, so HTTP, the WebSocket's
queries and mutations and the subscription feeds all pass it. What each kind of guard
checks is in that module's docstring; tests/test_access_rules.py looks for `Guarded`
resolvers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLObjectType, get_named_type
from strawberry.schema.schema_converter import GraphQLCoreConverter

from schema.access_rules import NODE, ROOTS, RULES, ResolveInfo, Rule
from schema.context import Context, forbidden, unauthenticated


class Guarded:
    """A field's resolver behind its rule (what tests/test_access_rules.py looks for)."""

    __slots__ = ("check", "coordinate", "resolve", "rule")

    def __init__(
        self,
        coordinate: str,
        rule: Rule,
        resolve: Callable[..., Any],
        check: Callable[..., Any],
    ) -> None:
        self.coordinate = coordinate
        self.rule = rule
        self.resolve = resolve
        self.check = check

    def __call__(self, source: Any, info: ResolveInfo, **args: Any) -> Any:
        return self.check(self, source, info, args)


def _refuse(rule: Rule, context: Context) -> None:
    if rule.hide_as_null:
        return None
    if context.viewer_id is None:
        raise unauthenticated()
    raise forbidden(rule.refusal)


def _needs_viewer(guard: Guarded, source: Any, info: ResolveInfo, args: Any) -> Any:
    if info.context.viewer_id is None:
        raise unauthenticated()
    return guard.resolve(source, info, **args)


def _checks_parent(guard: Guarded, source: Any, info: ResolveInfo, args: Any) -> Any:
    """An object field: may the viewer see the object it belongs to?"""
    rule, context = guard.rule, info.context
    if rule.needs_viewer and context.viewer_id is None:
        raise unauthenticated()
    assert rule.allows is not None
    verdict = rule.allows(source, context)
    if isawaitable(verdict):
        return _parent_later(guard, verdict, source, info, args)
    if not verdict:
        return _refuse(rule, context)
    return guard.resolve(source, info, **args)


async def _parent_later(
    guard: Guarded, verdict: Awaitable[bool], source: Any, info: ResolveInfo, args: Any
) -> Any:
    if not await verdict:
        return _refuse(guard.rule, info.context)
    result = guard.resolve(source, info, **args)
    return await result if isawaitable(result) else result


def _checks_answer(guard: Guarded, source: Any, info: ResolveInfo, args: Any) -> Any:
    """A root field that answers one object: may the viewer see it?"""
    if guard.rule.needs_viewer and info.context.viewer_id is None:
        raise unauthenticated()
    return _answer_later(guard, guard.resolve(source, info, **args), info)


async def _answer_later(guard: Guarded, result: Any, info: ResolveInfo) -> Any:
    if isawaitable(result):
        result = await result
    if result is None:
        return None
    assert guard.rule.allows is not None
    verdict = guard.rule.allows(result, info.context)
    if isawaitable(verdict):
        verdict = await verdict
    if verdict:
        return result
    if guard.coordinate.startswith("Subscription."):
        raise GraphQLError("No such booking.", extensions={"code": "NOT_FOUND"})
    return None


def _origin(type_: GraphQLObjectType) -> type | None:
    definition = type_.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    origin = getattr(definition, "origin", None)
    return origin if isinstance(origin, type) else None


def enforce(schema: strawberry.Schema) -> int:
    """Puts every rule of RULES that the schema can check in front of its field's
    resolver (after schema.direct_fields, whose plain resolvers it wraps). Returns how
    many fields it guards; a coordinate that names no field, or a rule given a type it
    cannot judge, stops the start-up."""
    graphql_schema = schema._schema
    guarded = 0
    for coordinate, rule in RULES.items():
        type_name, _, field_name = coordinate.partition(".")
        parent = graphql_schema.type_map.get(type_name)
        if not isinstance(parent, GraphQLObjectType) or field_name not in parent.fields:
            raise LookupError(f"access rule for {coordinate}: the schema has no such field")
        field = parent.fields[field_name]
        check: Callable[..., Any] | None = None
        if type_name in ROOTS:
            answers = get_named_type(field.type)
            if rule.allows is not None and type_name != "Mutation":
                judged = _origin(answers) if isinstance(answers, GraphQLObjectType) else None
                if rule is not NODE and judged not in rule.subjects:
                    raise TypeError(f"{coordinate}: {rule.name} cannot judge a {answers}")
                check = _checks_answer
            elif rule.needs_viewer:
                check = _needs_viewer
        elif rule.allows is not None:
            if _origin(parent) not in rule.subjects:
                raise TypeError(f"{coordinate}: {rule.name} cannot judge a {type_name}")
            check = _checks_parent
        elif rule.needs_viewer:
            check = _needs_viewer
        if check is None:
            continue
        resolve = field.resolve
        assert resolve is not None, coordinate
        field.resolve = Guarded(coordinate, rule, resolve, check)
        guarded += 1
    return guarded
