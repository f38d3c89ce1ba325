"""Single-use tokens sent by e-mail: verifying an address, resetting a password.

A token has 256 random bits and only its SHA-256 is stored. It works once, until it
expires (LIFETIMES), and only while it is the newest of its purpose for its user: asking
again replaces it (one open token per user and purpose, a unique index). Any refusal is
TOKEN_INVALID, the contract's code for tokens; its message tells an expired link from
one that was used, replaced or never existed.

A verified address claims what waits for it (`confirm_email`): the memberships of
addStaff/addMember invitations here, the staff member it names in the catalog (the
caller links those: availability.link_staff_user).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode
from domain.users import letters
from domain.users.accounts import user_of
from domain.users.letters import Letterhead
from domain.users.passwords import hash_password, password_problem
from domain.users.records import User
from domain.users.sessions import sign_out_everywhere
from domain.users.tables import email_tokens, invitations, memberships, users
from domain.users.tokens import hash_opaque_token, new_opaque_token
from domain.validation import is_email

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
LIFETIMES = {VERIFY_EMAIL: timedelta(hours=48), RESET_PASSWORD: timedelta(hours=1)}


async def _issue(conn: AsyncConnection, user_id: uuid.UUID, email: str, purpose: str) -> str:
    """A new token; the open one of the same purpose, if any, stops working."""
    token, token_hash = new_opaque_token()
    expires_at = func.now() + LIFETIMES[purpose]
    await conn.execute(
        pg_insert(email_tokens)
        .values(
            token_hash=token_hash,
            user_id=user_id,
            purpose=purpose,
            email=email,
            expires_at=expires_at,
        )
        .on_conflict_do_update(
            index_elements=[email_tokens.c.user_id, email_tokens.c.purpose],
            index_where=email_tokens.c.used_at.is_(None),
            set_={
                "token_hash": token_hash,
                "email": email,
                "created_at": func.now(),
                "expires_at": expires_at,
            },
        )
    )
    return token


async def _redeem(conn: AsyncConnection, token: str, purpose: str) -> tuple[uuid.UUID, str]:
    """Uses the token up: its user and the address it was sent to, or TOKEN_INVALID."""
    token_hash = hash_opaque_token(token)
    mine = (
        email_tokens.c.token_hash == token_hash,
        email_tokens.c.purpose == purpose,
        email_tokens.c.used_at.is_(None),
    )
    row = (
        await conn.execute(
            update(email_tokens)
            .where(*mine, email_tokens.c.expires_at > func.now())
            .values(used_at=func.now())
            .returning(email_tokens.c.user_id, email_tokens.c.email)
        )
    ).first()
    if row is not None:
        return row.user_id, row.email
    if await conn.scalar(select(email_tokens.c.user_id).where(*mine)) is not None:
        raise DomainError(
            ErrorCode.TOKEN_INVALID, "This link has expired; ask for a new one.", "token"
        )
    raise DomainError(
        ErrorCode.TOKEN_INVALID,
        "This link does not work: it was used already, or a newer one replaced it.",
        "token",
    )


async def confirm_email(
    conn: AsyncConnection, user_id: uuid.UUID, email: str, **values: Any
) -> User | None:
    """Marks `email` verified, if it is still the user's address (else None), with
    `values` (more columns of `users`), and gives the user the memberships waiting for
    that address. The caller links the catalog's staff (availability.link_staff_user)."""
    row = (
        (
            await conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.email == email)
                .values(email_verified=True, **values)
                .returning(*users.c)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    pending = (
        await conn.execute(
            invitations.delete()
            .where(invitations.c.email == email)
            .returning(invitations.c.organization_id, invitations.c.role)
        )
    ).all()
    if pending:
        await conn.execute(
            pg_insert(memberships)
            .values([{"organization_id": o, "user_id": user_id, "role": r} for o, r in pending])
            .on_conflict_do_nothing()
        )
    return user_of(row)


def _not_theirs() -> DomainError:
    return DomainError(
        ErrorCode.TOKEN_INVALID,
        "This link was sent to an address the account no longer has.",
        "token",
    )


async def request_email_verification(
    conn: AsyncConnection, user_id: uuid.UUID, letterhead: Letterhead
) -> EmailMessage | None:
    """The message with a new verification link (None: the address is verified)."""
    row = (
        await conn.execute(
            select(users.c.email, users.c.name, users.c.email_verified).where(users.c.id == user_id)
        )
    ).first()
    if row is None or row.email is None:
        raise DomainError(ErrorCode.INVALID_INPUT, "This account has no e-mail address.")
    if row.email_verified:
        return None
    token = await _issue(conn, user_id, row.email, VERIFY_EMAIL)
    return letters.verification(letterhead, row.email, row.name, token)


async def verify_email(conn: AsyncConnection, token: str) -> User:
    user_id, email = await _redeem(conn, token, VERIFY_EMAIL)
    user = await confirm_email(conn, user_id, email)
    if user is None:
        raise _not_theirs()
    return user


async def request_password_reset(
    conn: AsyncConnection, email: str, letterhead: Letterhead
) -> EmailMessage | None:
    """The message with a reset link, or None when no account has this address: the
    caller answers the same either way."""
    email = email.strip().lower()
    if not is_email(email):
        raise DomainError(ErrorCode.INVALID_INPUT, "Enter a valid e-mail address.", "email")
    row = (
        await conn.execute(select(users.c.id, users.c.name).where(users.c.email == email))
    ).first()
    if row is None:
        return None
    token = await _issue(conn, row.id, email, RESET_PASSWORD)
    return letters.password_reset(letterhead, email, row.name, token)


async def reset_password(conn: AsyncConnection, token: str, new_password: str) -> User:
    """Sets the new password and ends every session of the user. The link proved the
    mailbox, so the address counts as verified too."""
    if (why := password_problem(new_password)) is not None:
        raise DomainError(ErrorCode.INVALID_INPUT, why, "newPassword")
    user_id, email = await _redeem(conn, token, RESET_PASSWORD)
    user = await confirm_email(
        conn, user_id, email, password_hash=await hash_password(new_password)
    )
    if user is None:
        raise _not_theirs()
    await sign_out_everywhere(conn, user_id)
    return user
