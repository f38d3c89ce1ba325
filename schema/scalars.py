"""DateTime, Date and Time as the contract spells them.

DateTime answers are UTC, whole seconds, with a `Z`; inputs must carry an offset
(a naive one is INVALID_INPUT) and are normalised to UTC, so two spellings of one
instant are one input.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition


def invalid(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "INVALID_INPUT"})


def serialize_datetime(value: dt.datetime) -> str:
    utc = value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
    return utc.isoformat(timespec="seconds")[:19] + "Z"


def parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise invalid("A DateTime is a string like 2026-12-01T09:00:00Z.")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{value}' is not an RFC 3339 date-time.") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise invalid(f"'{value}' has no offset; add one, like Z or +01:00.")
    return parsed.astimezone(dt.UTC)


def parse_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise invalid("A Date is a string like 2026-12-01.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{value}' is not an ISO 8601 date.") from None


def serialize_time(value: dt.time) -> str:
    return value.strftime("%H:%M" if value.second == 0 else "%H:%M:%S")


def parse_time(value: Any) -> dt.time:
    if not isinstance(value, str) or len(value) not in (5, 8):
        raise invalid("A Time is a string like 09:30 or 09:30:00.")
    try:
        parsed = dt.time.fromisoformat(value)
    except ValueError:
        raise invalid(f"'{value}' is not a wall-clock time.") from None
    return parsed


DateTime = strawberry.scalar(
    name="DateTime",
    description='RFC 3339 instant with offset; answered in UTC ("2026-12-01T09:00:00Z")',
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
Date = strawberry.scalar(
    name="Date",
    description='ISO 8601 calendar date, "2026-12-01"',
    serialize=dt.date.isoformat,
    parse_value=parse_date,
)
Time = strawberry.scalar(
    name="Time",
    description='ISO 8601 wall-clock time, "09:30" or "09:30:00"',
    serialize=serialize_time,
    parse_value=parse_time,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {dt.datetime: DateTime, dt.date: Date, dt.time: Time}
