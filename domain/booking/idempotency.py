"""Idempotency keys: one key makes one booking (or one move), however often the
request is sent; the key's scope says whose keys it must differ from."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.booking.requests import Guest
from domain.booking.tables import idempotency_keys
from domain.errors import DomainError, ErrorCode
from infra.database import driver


def booking_scope(viewer: uuid.UUID | None, guest: Guest | None) -> str:
    """A new booking's keys are the user's own, or the guest e-mail's."""
    return f"user:{viewer}" if viewer else f"guest:{guest.email.strip().lower() if guest else ''}"


def reschedule_scope(booking_id: uuid.UUID) -> str:
    return f"reschedule:{booking_id}"


def reschedule_fingerprint(start: datetime, staff_id: uuid.UUID | None, any_staff: bool) -> bytes:
    """What makes two moves of one booking "the same input"."""
    return hashlib.sha256(
        json.dumps([int(start.timestamp()), None if any_staff else str(staff_id)]).encode()
    ).digest()


_INSERT_KEY = """
INSERT INTO idempotency_keys (scope, key, request_hash, booking_id) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING RETURNING key"""


async def claim_key(
    conn: AsyncConnection, scope: str, key: str, fingerprint: bytes, booking_id: uuid.UUID
) -> uuid.UUID | None:
    """Registers the key for this transaction's booking, or returns the booking an
    earlier request with the same key made. A concurrent request with the same key
    waits here for the first to commit (the primary key's index), so one key makes
    one booking however many copies race. A failed attempt rolls its key back."""
    inserted = await (await driver(conn)).fetchval(_INSERT_KEY, scope, key, fingerprint, booking_id)
    if inserted is not None:
        return None
    row = (
        await conn.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.booking_id).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
            )
        )
    ).one()
    if row.request_hash != fingerprint:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was used for a different request.",
            "input.idempotencyKey",
        )
    assert row.booking_id is not None
    return uuid.UUID(str(row.booking_id))
