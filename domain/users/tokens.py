"""Access tokens (JWT, HS256 pinned, the signing key named in `kid`) and opaque tokens
(refresh tokens, e-mail links).

JWTs are signed and checked with joserfc, the JOSE library of the Authlib
project (Authlib's own `authlib.jose` is deprecated in its favour). Where the keys come
from is a `Keys`: the one key of JWT_SECRET (kid "env"), or the rotating keys kept in
the database (signing_keys.py).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy.ext.asyncio import AsyncConnection

ALGORITHM = "HS256"
ENV_KID = "env"  # the key id of JWT_SECRET


class TokenRejected(Exception):
    """A presented access token is forged, expired or not ours."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    expires_at: int
    token_id: str


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    key: OctKey


class Keys(Protocol):
    async def signing(self, conn: AsyncConnection | None) -> SigningKey:
        """The key new tokens are signed with; `conn`: the caller's transaction, to read
        the newest key on (no second connection while it holds one)."""
        ...

    async def verifying(self, kid: str) -> SigningKey | None:
        """The key named `kid` while tokens signed with it may still be valid."""
        ...


class FixedKey:
    """JWT_SECRET: one key, never rotated (changing it ends every access token)."""

    def __init__(self, secret: str) -> None:
        self._key = SigningKey(ENV_KID, OctKey.import_key(secret.encode()))

    async def signing(self, conn: AsyncConnection | None = None) -> SigningKey:
        return self._key

    async def verifying(self, kid: str) -> SigningKey | None:
        return self._key if kid == self._key.kid else None


class TokenSigner:
    def __init__(self, keys: Keys | str, issuer: str, audience: str, lifetime_seconds: int) -> None:
        self.keys: Keys = FixedKey(keys) if isinstance(keys, str) else keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime_seconds
        self._claims = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )

    async def issue(
        self, user_id: uuid.UUID, conn: AsyncConnection | None = None
    ) -> tuple[str, int]:
        key = await self.keys.signing(conn)
        now = int(time.time())
        expires = now + self.lifetime
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": now,
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
        }
        header = {"alg": ALGORITHM, "kid": key.kid}
        return jwt.encode(header, claims, key.key, algorithms=[ALGORITHM]), expires

    async def verify(self, token: str) -> AccessClaims:
        try:
            # The header is read before the signature is checked only to pick the key;
            # the signature, the algorithm and the claims decide.
            kid = jws.extract_compact(token.encode()).headers().get("kid")
            if not isinstance(kid, str):
                raise TokenRejected("no key id")
            key = await self.keys.verifying(kid)
            if key is None:
                raise TokenRejected("unknown key id")
            decoded = jwt.decode(token, key.key, algorithms=[ALGORITHM])
            self._claims.validate(decoded.claims)
            return AccessClaims(
                user_id=uuid.UUID(decoded.claims["sub"]),
                expires_at=int(decoded.claims["exp"]),
                token_id=str(decoded.claims["jti"]),
            )
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise TokenRejected(str(error)) from error


def new_opaque_token() -> tuple[str, bytes]:
    """A token of 256 random bits (shown once) and the hash we store."""
    token = secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> bytes:
    # The token has 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).digest()


new_refresh_token = new_opaque_token
hash_refresh_token = hash_opaque_token
