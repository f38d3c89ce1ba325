"""How much an operation would take, measured on its document before it runs: depth,
aliases, directives, and cost (each field once per item of the lists it is in). One
walk, fragments expanded and each measured once per context (schema/operation_limits.py
compares the figures with the limits)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef

# Sizes the cost estimate assumes for lists whose length no argument gives: typical
# upper figures of a business, not exact ones (the execution time limit covers the rest).
LIST_SIZES: dict[tuple[str, str], int] = {
    ("AvailabilityDay", "slots"): 20,
    ("Slot", "staff"): 5,
    ("Service", "staff"): 20,
    ("Staff", "services"): 20,
    ("Staff", "weeklySchedule"): 7,
    ("Staff", "dateOverrides"): 10,
    ("Staff", "timeOff"): 20,
    ("WorkingHours", "intervals"): 3,
    ("DateOverride", "intervals"): 3,
    ("Booking", "history"): 10,
    ("User", "memberships"): 5,
}
DEFAULT_LIST_SIZE = 10
# A window's slots count at this many a day (a day of 30-minute slots from 8 to 18),
# times the days it spans.
SLOTS_PER_DAY = 20
MAX_WINDOW_DAYS = 62
# Past any limit anyone would set: keeps a refusal's figure readable.
COST_CAP = 10**12
# A connection's `edges` without a `first` we can read (the field's own default is used
# when it has one).
DEFAULT_PAGE = 50
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Figures:
    """What executing an operation would take: how deep it nests, how many aliases and
    directives it uses, and about how many values its answer can hold (lists counted
    at their `first` or their usual size)."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0
    cost: int = 0


class Measure:
    """One walk over what an operation would execute. Each fragment is measured once
    per context it is used in, so a document that spreads fragments within fragments
    costs the walk no more than its text."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: dict[str, Any],
        sizes: dict[tuple[str, str], int],
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.sizes = sizes
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[tuple[str, int | None, int], Figures] = {}
        self.max_wrapping = _max_wrapping(schema)

    def operation(self, operation: OperationDefinitionNode) -> Figures:
        root = self.schema.get_root_type(operation.operation)
        assert root is not None, "validated: the schema has this operation type"
        inner = self.selections(operation.selection_set, root, None)
        return Figures(
            inner.depth,
            inner.aliases,
            inner.directives + len(operation.directives or ()),
            inner.cost,
        )

    def selections(
        self, selection_set: SelectionSetNode, parent: Any, scale: int | None, wrapped: int = 0
    ) -> Figures:
        depth = aliases = directives = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                figures = self.field(selection, parent, scale, wrapped)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                figures = self.selections(selection.selection_set, inner, scale, wrapped)
                figures = _plus_directives(figures, len(selection.directives or ()))
            else:
                assert isinstance(selection, FragmentSpreadNode)
                figures = _plus_directives(
                    self.spread(selection, scale, wrapped), len(selection.directives or ())
                )
            depth = max(depth, figures.depth)
            aliases += figures.aliases
            directives += figures.directives
            cost += figures.cost
        return Figures(depth, aliases, directives, cost)

    def spread(self, spread: FragmentSpreadNode, scale: int | None, wrapped: int) -> Figures:
        key = (spread.name.value, scale, wrapped)
        found = self.memo.get(key)
        if found is None:
            fragment = self.fragments[spread.name.value]
            found = _plus_directives(
                self.selections(
                    fragment.selection_set,
                    self.schema.get_type(fragment.type_condition.name.value),
                    scale,
                    wrapped,
                ),
                len(fragment.directives or ()),
            )
            self.memo[key] = found
        return found

    def field(self, node: FieldNode, parent: Any, scale: int | None, wrapped: int) -> Figures:
        name = node.name.value
        if name == "ofType" and parent.name == "__Type":
            # A type reference unwraps at most as deep as this schema wraps a type:
            # below that `ofType` is null and nothing under it ever runs.
            wrapped += 1
            if wrapped > self.max_wrapping:
                return Figures(1, 1 if node.alias else 0, len(node.directives or ()), 1)
        definition = _field_definition(self.schema, parent, name)
        aliases = 1 if node.alias is not None else 0
        directives = len(node.directives or ())
        size = 1
        if _is_list(definition.type):
            size = self._size(parent, name, scale)
        named = get_named_type(definition.type)
        if node.selection_set is None or not is_composite_type(named):
            return Figures(1, aliases, directives, size)
        inner_scale = self._window_days(node) if named.name == "Availability" else None
        if inner_scale is None:
            inner_scale = self._first(node, definition)
        inner = self.selections(node.selection_set, named, inner_scale, wrapped)
        return Figures(
            1 + inner.depth,
            aliases + inner.aliases,
            directives + inner.directives,
            min(COST_CAP, 1 + size * inner.cost),
        )

    def _size(self, parent: Any, name: str, scale: int | None) -> int:
        """How many items a list is counted at: a connection's `edges` at its `first`,
        a window's days and slots by its length, others at their usual size."""
        if scale is not None:
            if name == "edges":
                return scale
            if parent.name == "Availability" and name == "days":
                return scale + 1  # a window can touch one more local date
            if parent.name == "Availability" and name == "slots":
                return scale * SLOTS_PER_DAY
        return self.sizes.get((parent.name, name), DEFAULT_LIST_SIZE)

    def _window_days(self, node: FieldNode) -> int:
        """The days an availability window spans (at most the 62 it may span)."""
        ends: dict[str, datetime] = {}
        for given in node.arguments or ():
            name = given.name.value
            if name not in ("start", "end"):
                continue
            value: object = None
            if isinstance(given.value, StringValueNode):
                with contextlib.suppress(ValueError):
                    value = datetime.fromisoformat(given.value.value)
            elif isinstance(given.value, VariableNode):
                value = self.variables.get(given.value.name.value)
            if isinstance(value, datetime):
                ends[name] = value
        if len(ends) < 2 or ends["start"].tzinfo is None or ends["end"].tzinfo is None:
            return MAX_WINDOW_DAYS  # the resolver refuses it anyway
        seconds = (ends["end"] - ends["start"]).total_seconds()
        return min(MAX_WINDOW_DAYS, max(1, math.ceil(seconds / 86_400)))

    def _first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        """The page size a connection field asks for: its `first` argument, a variable's
        value or the argument's default; None for a field that is no connection."""
        argument = definition.args.get("first")
        if argument is None:
            return None
        value: object = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            if isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                value = self.variables.get(given.value.name.value, argument.default_value)
        if not isinstance(value, int):
            return DEFAULT_PAGE
        return max(0, value)


def _plus_directives(figures: Figures, count: int) -> Figures:
    if not count:
        return figures
    return Figures(figures.depth, figures.aliases, figures.directives + count, figures.cost)


def _field_definition(schema: GraphQLSchema, parent: Any, name: str) -> GraphQLField:
    if name == "__typename":
        return TypeNameMetaFieldDef
    if name == "__schema" and parent is schema.query_type:
        return SchemaMetaFieldDef
    if name == "__type" and parent is schema.query_type:
        return TypeMetaFieldDef
    definition: GraphQLField = parent.fields[name]  # validated: the field exists
    return definition


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _max_wrapping(schema: GraphQLSchema) -> int:
    """How many list and non-null wrappers the deepest type reference has."""
    deepest = 0
    for named in schema.type_map.values():
        references = [f.type for f in getattr(named, "fields", {}).values()]
        references += [
            a.type
            for f in getattr(named, "fields", {}).values()
            for a in getattr(f, "args", {}).values()
        ]
        for type_ in references:
            depth = 0
            while isinstance(type_, GraphQLNonNull | GraphQLList):
                depth += 1
                type_ = type_.of_type
            deepest = max(deepest, depth)
    return deepest


def introspection_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], int]:
    """Introspection's lists at this schema's own sizes (averages, rounded up), so
    GraphiQL's introspection costs about what its answer holds."""
    types = [t for t in schema.type_map.values()]
    objects = [t for t in types if isinstance(t, GraphQLObjectType)]
    fields = [f for t in objects for f in t.fields.values()]

    def average(counts: list[int]) -> int:
        return max(1, math.ceil(sum(counts) / len(counts))) if counts else 1

    field_count = average([len(t.fields) for t in objects])
    return {
        ("__Schema", "types"): len(types),
        ("__Schema", "directives"): len(schema.directives),
        ("__Type", "fields"): field_count,
        ("__Type", "inputFields"): field_count,
        ("__Type", "enumValues"): field_count,
        ("__Type", "interfaces"): 2,
        ("__Type", "possibleTypes"): 2,
        ("__Field", "args"): average([len(f.args) for f in fields]),
        ("__Directive", "args"): 2,
        ("__Directive", "locations"): 5,
    }
