"""HMAC keys the server derives values from (phone codes, guests' manage links): from
JWT_SECRET when it is set (then they are in no database), else generated once and kept
in `server_secrets`, so every process on the database derives the same values."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.users.tables import server_secrets


async def server_key(
    engine: AsyncEngine, name: str, purpose: bytes, jwt_secret: str | None
) -> bytes:
    """The key kept as `name`, or derived from `jwt_secret` for `purpose`."""
    if jwt_secret:
        return hmac.new(jwt_secret.encode(), purpose, hashlib.sha256).digest()
    async with engine.begin() as conn:
        await conn.execute(
            pg_insert(server_secrets)
            .values(name=name, value=secrets.token_urlsafe(32))
            .on_conflict_do_nothing()
        )
        value = await conn.scalar(
            select(server_secrets.c.value).where(server_secrets.c.name == name)
        )
    assert isinstance(value, str)
    return value.encode()


async def manage_link_key(engine: AsyncEngine, jwt_secret: str | None) -> bytes:
    """The key guests' manage tokens are derived from (domain/booking/access.py)."""
    return await server_key(engine, "manage_links", b"guest manage links", jwt_secret)
