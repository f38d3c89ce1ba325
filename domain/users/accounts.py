"""Reading accounts: a `User` from its row, users by id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.users.records import User
from domain.users.tables import users


def user_of(row: RowMapping) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        phone=row["phone"],
        name=row["name"],
        email_verified=row["email_verified"],
        time_zone=row["time_zone"],
        verified_phone=row["verified_phone"],
    )


async def users_by_id(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    rows = (await conn.execute(select(users).where(users.c.id.in_(list(ids))))).mappings()
    return {row["id"]: user_of(row) for row in rows}
