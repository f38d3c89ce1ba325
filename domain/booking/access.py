"""Who someone is to a booking (customer, guest holding its manage token, its staff
member, an organization manager): the roles that decide what they may see and do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.booking.records import Actor, Booking
from domain.booking.tables import bookings
from domain.users import service as users
from domain.users.records import MANAGERS


def manage_token_for(key: bytes, booking_id: uuid.UUID) -> str:
    """A guest's manage token: 192 bits derived from the booking id with the server's
    key (domain/users/server_keys.py), so each of the booking's e-mails can carry the
    guest's link while only the token's hash is kept."""
    digest = hmac.new(key, b"manage " + booking_id.bytes, hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


async def manage_tokens(
    conn: AsyncConnection, key: bytes, booking_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The guests' manage tokens of these bookings that derive from `key`: those made
    with another key (before it was changed, or before tokens were derived) are left
    out rather than given a token that would not open them."""
    if not booking_ids:
        return {}
    rows = await conn.execute(
        select(bookings.c.id, bookings.c.manage_token_hash).where(
            bookings.c.id.in_(list(booking_ids)), bookings.c.manage_token_hash.is_not(None)
        )
    )
    tokens = {}
    for booking_id, stored in rows:
        token = manage_token_for(key, booking_id)
        if token_matches(stored, token):
            tokens[booking_id] = token
    return tokens


def new_manage_token(key: bytes | None, booking_id: uuid.UUID) -> tuple[str, bytes]:
    """A guest's manage token (shown once) and the hash we keep; without a key, random
    (then no e-mail can carry it)."""
    token = manage_token_for(key, booking_id) if key is not None else secrets.token_urlsafe(24)
    return token, hashlib.sha256(token.encode()).digest()


def token_matches(stored_hash: bytes | None, token: str | None) -> bool:
    if stored_hash is None or not token:
        return False
    return hmac.compare_digest(stored_hash, hashlib.sha256(token.encode()).digest())


async def roles_of(
    conn: AsyncConnection,
    booking: Booking,
    viewer: uuid.UUID | None,
    manage_token: str | None,
    token_hash: bytes | None = None,
) -> frozenset[Actor]:
    """What the viewer is to this booking; empty: a stranger."""
    roles: set[Actor] = set()
    if token_hash is None and manage_token:
        token_hash = await conn.scalar(
            select(bookings.c.manage_token_hash).where(bookings.c.id == booking.id)
        )
    if token_matches(token_hash, manage_token):
        roles.add(Actor.GUEST)
    if viewer is not None:
        if booking.customer_id == viewer:
            roles.add(Actor.CUSTOMER)
        staff = (await availability.staff_by_id(conn, [booking.staff_id])).get(booking.staff_id)
        if staff is not None and staff.user_id == viewer:
            roles.add(Actor.STAFF)
        if await users.role_in(conn, viewer, booking.organization_id) in MANAGERS:
            roles.add(Actor.ADMIN)
    return frozenset(roles)
