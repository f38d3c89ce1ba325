"""Types every part of the schema shares."""

from __future__ import annotations

import base64
from enum import Enum

import strawberry

from domain.errors import DomainError, InvalidInput
from domain.errors import ErrorCode as DomainErrorCode
from domain.users.records import Role as DomainRole

ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode")
Role = strawberry.enum(DomainRole, name="Role")


@strawberry.enum
class Weekday(Enum):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="A failure the user can act on.")
class UserError:
    code: ErrorCode  # type: ignore[valid-type]
    field: str | None = strawberry.field(
        description='The input field at fault, as a dotted path ("input.start"); null when none.'
    )
    message: str = strawberry.field(description="One human sentence, safe to show to an end user.")
    retry_after_seconds: int | None = strawberry.field(
        default=None,
        description="RATE_LIMITED: the seconds to wait before trying again; null otherwise.",
    )

    @classmethod
    def list_from(cls, error: DomainError) -> list[UserError]:
        errors = error.errors() if isinstance(error, InvalidInput) else [error]
        return [cls(code=e.code, field=e.field, message=e.message) for e in errors]


@strawberry.type
class Money:
    amount: int = strawberry.field(description="Minor units (cents), as Stripe counts.")
    currency: str = strawberry.field(description="ISO 4217, upper case.")


def encode_cursor(key: object) -> str:
    """An opaque cursor: the position's key, base64url-encoded."""
    return base64.urlsafe_b64encode(f"cursor:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key inside a cursor; ValueError when it is not one of ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor") from None
    prefix, _, key = text.partition(":")
    if prefix != "cursor" or not key:
        raise ValueError("not a cursor")
    return key
