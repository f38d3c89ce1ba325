"""Access tokens made by hand, for tests that check what the server refuses: signed with
the server's own keys (read from the database, as any process reads them) or others."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from joserfc import jws, jwt
from joserfc.jwk import Key, OctKey


async def signing_keys(database_url: str) -> dict[str, OctKey]:
    """Every key in `signing_keys`, by key id."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT kid, secret FROM signing_keys")
    finally:
        await conn.close()
    return {row["kid"]: OctKey.import_key(row["secret"].encode()) for row in rows}


def kid_of(token: str) -> str:
    kid = jws.extract_compact(token.encode()).headers()["kid"]
    assert isinstance(kid, str)
    return kid


def claims(subject: str, **changes: Any) -> dict[str, Any]:
    """The claims the server issues (issuer, audience, 10 minutes), with `changes`."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "booking-api",
        "aud": "booking-spa",
        "sub": subject,
        "iat": now,
        "exp": now + 600,
        "jti": "made-by-a-test",
    }
    base.update(changes)
    return base


def sign(key: Key, header: dict[str, Any], body: dict[str, Any]) -> str:
    algorithm = header["alg"]
    return jwt.encode(header, body, key, algorithms=[algorithm])
