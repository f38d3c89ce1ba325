"""Sessions: a short-lived access token (JWT) and a single-use refresh token.

Each sign-in starts a family of refresh tokens; every refresh retires the token
presented and hands out the next of its family. A retired token presented again means
it leaked (or was copied): the whole family is revoked and the event logged, as a
WARNING with the marker `security: refresh token reuse` (user and family ids, never the
token). Revoking refresh tokens does not end access tokens already handed out: they
live until their expiry (ACCESS_TOKEN_MINUTES), and no request looks anything up to
check them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode
from domain.users.accounts import users_by_id
from domain.users.records import Session
from domain.users.tables import refresh_tokens
from domain.users.tokens import TokenSigner, hash_refresh_token, new_refresh_token
from infra.ids import uuid7

security_log = logging.getLogger("booking.security")

REFRESH_LIFETIME = timedelta(days=30)


async def open_session(
    conn: AsyncConnection,
    signer: TokenSigner,
    user_id: uuid.UUID,
    family_id: uuid.UUID | None = None,
) -> Session:
    """Hands out an access token and a refresh token of `family_id` (None: a new
    family, i.e. a new sign-in)."""
    token, token_hash = new_refresh_token()
    await conn.execute(
        insert(refresh_tokens).values(
            token_hash=token_hash,
            family_id=family_id or uuid7(),
            user_id=user_id,
            expires_at=datetime.now(UTC) + REFRESH_LIFETIME,
        )
    )
    access, expires = await signer.issue(user_id, conn)
    user = (await users_by_id(conn, [user_id]))[user_id]
    return Session(
        user=user,
        access_token=access,
        access_token_expires_at=datetime.fromtimestamp(expires, UTC),
        refresh_token=token,
    )


async def refresh_session(
    conn: AsyncConnection, signer: TokenSigner, token: str
) -> Session | DomainError:
    """Single use: retires `token` and opens the next one of its family. Presenting a
    retired token again means it leaked: the whole family is revoked. The refusal is
    returned, not raised, so the caller commits the revocation."""
    token_hash = hash_refresh_token(token)
    now = func.now()
    row = (
        await conn.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.token_hash == token_hash,
                refresh_tokens.c.retired_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
                refresh_tokens.c.expires_at > now,
            )
            .values(retired_at=now)
            .returning(refresh_tokens.c.user_id, refresh_tokens.c.family_id)
        )
    ).first()
    if row is None:
        await _refused(conn, token_hash)
        return DomainError(
            ErrorCode.TOKEN_INVALID, "This session has ended; sign in again.", "refreshToken"
        )
    return await open_session(conn, signer, row.user_id, row.family_id)


async def _refused(conn: AsyncConnection, token_hash: bytes) -> None:
    """A known token that may not be used (again): its family is revoked, and a reuse
    (the token had been used for a refresh already) is logged."""
    known = (
        await conn.execute(
            select(
                refresh_tokens.c.user_id, refresh_tokens.c.family_id, refresh_tokens.c.retired_at
            ).where(refresh_tokens.c.token_hash == token_hash)
        )
    ).first()
    if known is None:
        return
    await _revoke_family(conn, known.family_id)
    if known.retired_at is not None:
        security_log.warning(
            "security: refresh token reuse: user %s, family %s; the family is revoked",
            known.user_id,
            known.family_id,
        )


async def _revoke_family(conn: AsyncConnection, family_id: uuid.UUID) -> None:
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def sign_out(conn: AsyncConnection, token: str) -> None:
    """Ends the session family of `token` (every refresh token it produced)."""
    family = await conn.scalar(
        select(refresh_tokens.c.family_id).where(
            refresh_tokens.c.token_hash == hash_refresh_token(token)
        )
    )
    if family is None:
        raise DomainError(ErrorCode.TOKEN_INVALID, "This session is not known.", "refreshToken")
    await _revoke_family(conn, family)


async def sign_out_everywhere(conn: AsyncConnection, user_id: uuid.UUID) -> None:
    """Ends every session family of the user: no refresh token of theirs works again."""
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
