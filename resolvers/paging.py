"""Relay-style paging as the contract has it: `first` 0-100 (null: the list's default),
opaque cursors. Here, not in a schema module, so that resolvers and the types' field
resolvers share it without importing each other."""

from __future__ import annotations

import uuid

from schema.common import PageInfo, decode_cursor
from schema.context import invalid_argument

MAX_FIRST = 100


def page_size(first: int | None, default: int) -> int:
    """`first` as the contract allows it: null means the default, at most 100."""
    if first is None:
        return default
    if first < 0 or first > MAX_FIRST:
        raise invalid_argument("`first` must be between 0 and 100.", "first")
    return first


def page_args(first: int | None, after: str | None) -> tuple[int, uuid.UUID | None]:
    first = page_size(first, 50)
    try:
        key = decode_cursor(after)
        return first, uuid.UUID(key) if key is not None else None
    except ValueError:
        raise invalid_argument("`after` is not a cursor of this list.", "after") from None


def page_info(cursors: list[str], has_next: bool, has_previous: bool) -> PageInfo:
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
