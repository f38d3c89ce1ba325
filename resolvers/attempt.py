"""Running one mutation's unit of work and turning domain failures into payload errors."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode
from infra.ids import key_of
from schema.common import UserError
from schema.context import Info

T = TypeVar("T")


async def attempt(
    info: Info, work: Callable[[AsyncConnection], Awaitable[T]]
) -> tuple[T | None, list[UserError]]:
    """Runs `work` in one transaction: its result, or the errors it raised (rolled back)."""
    try:
        async with info.context.unit_of_work() as conn:
            return await work(conn), []
    except DomainError as error:
        return None, UserError.list_from(error)


def key(global_id: str | None, type_name: str, field: str) -> uuid.UUID:
    """The database key of an input id, or NOT_FOUND naming the field."""
    found = key_of(global_id, type_name) if global_id is not None else None
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"No such {type_name.lower()}.", field)
    return found
