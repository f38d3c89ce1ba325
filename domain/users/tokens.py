"""Access tokens (JWT, HS256 pinned) and opaque refresh tokens.

JWTs are signed and checked with joserfc, the JOSE library of the Authlib
project (Authlib's own `authlib.jose` is deprecated in its favour).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

ALGORITHM = "HS256"


class TokenRejected(Exception):
    """A presented access token is forged, expired or not ours."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    expires_at: int
    token_id: str


class TokenSigner:
    def __init__(self, secret: str, issuer: str, audience: str, lifetime_seconds: int) -> None:
        self._key = OctKey.import_key(secret.encode())
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

    def issue(self, user_id: uuid.UUID) -> tuple[str, int]:
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
        return jwt.encode({"alg": ALGORITHM}, claims, self._key, algorithms=[ALGORITHM]), expires

    def verify(self, token: str) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            self._claims.validate(decoded.claims)
            return AccessClaims(
                user_id=uuid.UUID(decoded.claims["sub"]),
                expires_at=int(decoded.claims["exp"]),
                token_id=str(decoded.claims["jti"]),
            )
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise TokenRejected(str(error)) from error


def new_refresh_token() -> tuple[str, bytes]:
    """The opaque token (shown once) and the hash we store."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    # The token has 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).digest()
