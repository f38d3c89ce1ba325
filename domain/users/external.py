"""Accounts signed in through a third-party provider, and the one-time codes that hand
such a sign-in over to the SPA.

Who the provider says signed in (oidc.ProviderIdentity) becomes one of our accounts by
this rule (docs/identity.md, "Third-party sign-in"):

1. (provider, subject) is known: that account.
2. The provider vouches for the e-mail (`email_verified`, GitHub's verified primary
   address): the account with that e-mail is linked, or else a new one is made with the
   e-mail verified. An account that had never proven its e-mail itself is proven now,
   and its password and sessions end: whoever set them never showed they own the
   address (pre-hijacking: a stranger signs up with your e-mail before you arrive).
3. It does not vouch: an account with that e-mail is never linked; the sign-in is
   refused (EMAIL_TAKEN: sign in with that account's password instead). With no such
   account, a new one is made without an e-mail: an address nobody proved is not
   stored, where it would lock its owner out of signing up.
4. No e-mail at all: a new account without one.

Tokens never travel in a URL: the callback hands the SPA a one-time code (60 seconds,
single use, stored as a hash) that `exchangeSignInCode` trades for a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, ErrorCode
from domain.users import sessions
from domain.users.email_tokens import confirm_email
from domain.users.oidc import ProviderIdentity
from domain.users.records import Session
from domain.users.tables import external_identities, sign_in_codes, users
from domain.users.tokens import TokenSigner, hash_opaque_token, new_opaque_token
from domain.validation import is_email
from infra.ids import uuid7

CODE_LIFETIME = timedelta(seconds=60)
KEPT_AFTER_EXPIRY = timedelta(hours=1)  # then tidied: CODE_EXPIRED until, CODE_INVALID after
# An S256 code challenge (RFC 7636): base64url of a SHA-256, no padding.
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
UNNAMED = "New user"


class How(Enum):
    KNOWN = "known"  # this identity signed in before
    LINKED = "linked"  # to the existing account with the verified e-mail
    CREATED = "created"


@dataclass(frozen=True, slots=True)
class ExternalSignIn:
    user_id: uuid.UUID
    how: How
    # The account's address when this sign-in proved it (linked or made with it): what
    # waits for that address is the user's (availability.link_staff_user).
    verified_email: str | None


def _email(identity: ProviderIdentity) -> str | None:
    email = identity.email.strip().lower() if identity.email else None
    return email if email and is_email(email) else None


def _name(identity: ProviderIdentity, email: str | None) -> str:
    name = (identity.name or "").strip() or (email.split("@")[0] if email else "") or UNNAMED
    return name[:200]


async def sign_in_external(
    conn: AsyncConnection, provider: str, identity: ProviderIdentity
) -> ExternalSignIn:
    """The account of this provider identity, by the rule above (linked or made here, in
    `conn`'s transaction). DomainError EMAIL_TAKEN: rule 3's refusal."""
    # One at a time per identity: two callbacks of the same new person make one account.
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"external-identity:{provider}:{identity.subject}"},
    )
    email = _email(identity)
    verified = email if identity.email_verified else None
    known = await conn.scalar(
        update(external_identities)
        .where(
            external_identities.c.provider == provider,
            external_identities.c.subject == identity.subject,
        )
        .values(email=email, email_verified=identity.email_verified, last_sign_in_at=func.now())
        .returning(external_identities.c.user_id)
    )
    if known is not None:
        return ExternalSignIn(known, How.KNOWN, None)
    taken = select(users.c.id).where(users.c.email == email)
    if email is not None and verified is None and await conn.scalar(taken) is not None:
        raise DomainError(
            ErrorCode.EMAIL_TAKEN,
            "An account with this e-mail exists, and the provider does not confirm the"
            " address is yours: sign in with that account's password.",
        )
    user_id, how = await _account(conn, identity, verified)
    await conn.execute(
        insert(external_identities).values(
            provider=provider,
            subject=identity.subject,
            user_id=user_id,
            email=email,
            email_verified=identity.email_verified,
        )
    )
    return ExternalSignIn(user_id, how, verified)


async def _account(
    conn: AsyncConnection, identity: ProviderIdentity, verified: str | None
) -> tuple[uuid.UUID, How]:
    """The account with the verified e-mail, or a new one (without e-mail if none)."""
    while True:  # at most twice: a sign-up may take the e-mail between our two statements
        if verified is not None:
            found = (
                await conn.execute(
                    select(users.c.id, users.c.email_verified)
                    .where(users.c.email == verified)
                    .with_for_update()
                )
            ).first()
            if found is not None:
                if not found.email_verified:
                    # The provider proved the address this account only claimed: the
                    # account is the address owner's now, and no credential set before
                    # that proof survives.
                    await confirm_email(conn, found.id, verified, password_hash=None)
                    await sessions.sign_out_everywhere(conn, found.id)
                return found.id, How.LINKED
        user_id = await conn.scalar(
            pg_insert(users)
            .values(id=uuid7(), email=verified, name=_name(identity, verified))
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(users.c.id)
        )
        if user_id is not None:
            if verified is not None:
                # Verified as e-mail verification does it: with the memberships waiting
                # for the address (addStaff, addMember before the person had an account).
                await confirm_email(conn, user_id, verified)
            return user_id, How.CREATED


# ---- one-time sign-in codes ----------------------------------------------------------------


def s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636, section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def issue_code(
    conn: AsyncConnection, user_id: uuid.UUID, client_challenge: str | None, now: datetime
) -> str:
    """A one-time code for the user, good for CODE_LIFETIME; with `client_challenge`, only
    the holder of its verifier may exchange it."""
    code, code_hash = new_opaque_token()
    await conn.execute(
        insert(sign_in_codes).values(
            code_hash=code_hash,
            user_id=user_id,
            client_challenge=client_challenge,
            expires_at=now + CODE_LIFETIME,
        )
    )
    return code


async def exchange_code(
    conn: AsyncConnection,
    signer: TokenSigner,
    code: str,
    code_verifier: str | None,
    now: datetime,
) -> Session | DomainError:
    """A new session for the code's user. The code is spent whatever the outcome, so the
    refusal is returned, not raised: the caller commits the spending."""
    row = (
        await conn.execute(
            delete(sign_in_codes)
            .where(sign_in_codes.c.code_hash == hash_opaque_token(code))
            .returning(
                sign_in_codes.c.user_id,
                sign_in_codes.c.client_challenge,
                sign_in_codes.c.expires_at,
            )
        )
    ).first()
    if row is None:
        return DomainError(
            ErrorCode.CODE_INVALID,
            "This sign-in code is unknown or was used; sign in again.",
            "code",
        )
    if row.expires_at <= now:
        return DomainError(
            ErrorCode.CODE_EXPIRED, "This sign-in code has expired; sign in again.", "code"
        )
    if row.client_challenge is not None and not (
        code_verifier is not None
        and VERIFIER.fullmatch(code_verifier)
        and hmac.compare_digest(s256(code_verifier), row.client_challenge)
    ):
        return DomainError(
            ErrorCode.CODE_INVALID,
            "The code verifier does not match the sign-in's code challenge; sign in again.",
            "codeVerifier",
        )
    return await sessions.open_session(conn, signer, row.user_id)
