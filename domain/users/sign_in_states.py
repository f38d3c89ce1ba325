"""Third-party sign-ins under way: what /auth/{provider}/callback needs to finish one,
kept in PostgreSQL by the `state` the provider hands back.

Kept server-side rather than in a cookie session (authlib's default): the API sets no
cookie, the SPA may live on another origin, and whichever process takes the callback
finds it. A state is taken once (deleted as it is read) and is good for 10 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.users.tables import sign_in_states
from domain.users.tokens import hash_opaque_token

STATE_LIFETIME = timedelta(minutes=10)
# Expired states are kept this long, so a late callback learns it came too late (the
# SPA is told `sign_in_expired`) instead of meeting an unknown state.
KEPT_AFTER_EXPIRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    provider: str
    redirect_uri: str  # the SPA's page to send the browser back to (allowed origin)
    callback_uri: str  # ours, as given to the provider
    code_verifier: str  # PKCE with the provider
    nonce: str | None  # OpenID Connect
    client_challenge: str | None  # the SPA's own S256 challenge for exchangeSignInCode
    expires_at: datetime


async def remember(conn: AsyncConnection, state: str, pending: PendingSignIn) -> None:
    await conn.execute(
        insert(sign_in_states).values(
            state_hash=hash_opaque_token(state),
            provider=pending.provider,
            redirect_uri=pending.redirect_uri,
            callback_uri=pending.callback_uri,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            client_challenge=pending.client_challenge,
            expires_at=pending.expires_at,
        )
    )


async def take(conn: AsyncConnection, provider: str, state: str) -> PendingSignIn | None:
    """The sign-in `state` names, gone from the table once this commits; None when it is
    unknown, used already or another provider's. The caller checks `expires_at`."""
    row = (
        (
            await conn.execute(
                delete(sign_in_states)
                .where(
                    sign_in_states.c.state_hash == hash_opaque_token(state),
                    sign_in_states.c.provider == provider,
                )
                .returning(*sign_in_states.c)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return PendingSignIn(
        provider=row["provider"],
        redirect_uri=row["redirect_uri"],
        callback_uri=row["callback_uri"],
        code_verifier=row["code_verifier"],
        nonce=row["nonce"],
        client_challenge=row["client_challenge"],
        expires_at=row["expires_at"],
    )
