"""Rows of the users domain past their use (sign-in states and codes of third-party
sign-in, phone codes), forgotten by the periodic sweep (domain/background.py) rather than
by the requests that make new ones. Each is kept a while after it expires, so a late
answer says "expired" rather than "unknown"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.users import external, phone, sign_in_states
from domain.users.tables import phone_codes, sign_in_codes
from domain.users.tables import sign_in_states as states


async def forget_expired(engine: AsyncEngine, now: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            delete(states).where(states.c.expires_at < now - sign_in_states.KEPT_AFTER_EXPIRY)
        )
        await conn.execute(
            delete(sign_in_codes).where(
                sign_in_codes.c.expires_at < now - external.KEPT_AFTER_EXPIRY
            )
        )
        await conn.execute(
            delete(phone_codes).where(phone_codes.c.expires_at < now - phone.KEPT_AFTER_EXPIRY)
        )
