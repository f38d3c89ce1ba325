"""The keys access tokens are signed with, kept in the database (`signing_keys`) so every
process shares them, and rotated without signing anyone out.

- The newest key that is not retired signs. A process reads the keys on the caller's
  transaction before it signs, so right after a rotation every process signs with the
  new key.
- A retired key still verifies for as long as a token it signed may live
  (`retired_at` + the access token lifetime + LEEWAY), then it is refused, and pruned
  at a later rotation.
- A token naming a key id this process does not know makes it read the keys again, at
  most once every UNKNOWN_KID_RELOAD_SECONDS (a stream of made-up ids costs at most
  that). Besides, a process reads them again every RELOAD_SECONDS, to learn of
  retirements.

`rotate` is run by `python -m commands.rotate_jwt_key`. With JWT_SECRET set, none of
this is used: that one key (kid "env") signs and verifies (tokens.FixedKey).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc.jwk import OctKey
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.users.tables import signing_keys
from domain.users.tokens import FixedKey, Keys, SigningKey
from infra.ids import uuid7

log = logging.getLogger(__name__)

RELOAD_SECONDS = 60.0
UNKNOWN_KID_RELOAD_SECONDS = 5.0
# A transaction that read the keys just before a rotation committed may still sign
# with the old key; and clocks differ a little.
LEEWAY = timedelta(seconds=60)
# Retired keys are deleted this long after they stopped verifying.
PRUNE_AFTER = timedelta(days=1)
# Serializes creating and rotating keys across processes (pg_advisory_xact_lock).
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('booking.signing_keys'))"


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    secret: str
    created_at: datetime
    retired_at: datetime | None

    def verifies(self, now: datetime, lifetime: timedelta) -> bool:
        return self.retired_at is None or now < self.retired_at + lifetime + LEEWAY


async def _all(conn: AsyncConnection) -> list[StoredKey]:
    rows = await conn.execute(
        select(
            signing_keys.c.kid,
            signing_keys.c.secret,
            signing_keys.c.created_at,
            signing_keys.c.retired_at,
        )
    )
    return [StoredKey(*row) for row in rows]


def _new_values() -> dict[str, str]:
    # uuid7: key ids sort by age, which is what an operator reading them wants.
    return {"kid": uuid7().hex[:16], "secret": secrets.token_urlsafe(48)}


async def ensure_key(conn: AsyncConnection) -> None:
    """Makes a signing key when none is in use (a new database)."""
    await conn.execute(text(_LOCK))
    in_use = await conn.scalar(
        select(func.count()).select_from(signing_keys).where(signing_keys.c.retired_at.is_(None))
    )
    if not in_use:
        await conn.execute(insert(signing_keys).values(**_new_values()))


async def rotate(conn: AsyncConnection, lifetime: timedelta) -> tuple[str, list[str]]:
    """A new key signs from now on; the keys in use until now are retired (they go on
    verifying their tokens until these expire). Returns the new key id and the key ids
    pruned: retired long enough that no token of theirs can be valid."""
    await conn.execute(text(_LOCK))
    values = _new_values()
    await conn.execute(
        update(signing_keys)
        .where(signing_keys.c.retired_at.is_(None))
        .values(retired_at=func.now())
    )
    await conn.execute(insert(signing_keys).values(**values))
    pruned = await conn.scalars(
        delete(signing_keys)
        .where(signing_keys.c.retired_at < func.now() - (lifetime + LEEWAY + PRUNE_AFTER))
        .returning(signing_keys.c.kid)
    )
    return values["kid"], list(pruned)


class KeyRing:
    """This process's copy of the signing keys (`Keys` for tokens.TokenSigner)."""

    def __init__(self, engine: AsyncEngine, lifetime_seconds: int) -> None:
        self._engine = engine
        self._lifetime = timedelta(seconds=lifetime_seconds)
        self._keys: dict[str, StoredKey] = {}
        self._imported: dict[str, SigningKey] = {}
        self._loaded_at = -float("inf")  # time.monotonic()
        self._unknown_at = -float("inf")  # the last reload for a key id not known
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Makes the first key of a new database, and reads the keys."""
        async with self._engine.begin() as conn:
            await ensure_key(conn)
            self._take(await _all(conn))

    async def signing(self, conn: AsyncConnection | None) -> SigningKey:
        if conn is None:
            async with self._engine.begin() as own:
                return await self.signing(own)
        self._take(await _all(conn))
        newest = self._newest()
        if newest is None:  # every key retired by hand: make one
            await ensure_key(conn)
            self._take(await _all(conn))
            newest = self._newest()
            assert newest is not None
        return self._imported_key(newest)

    async def verifying(self, kid: str) -> SigningKey | None:
        now = time.monotonic()
        if kid not in self._keys and now - self._unknown_at >= UNKNOWN_KID_RELOAD_SECONDS:
            # Counted apart from other reloads: a key made a second after this process
            # last read them is found at once.
            self._unknown_at = now
            await self._reload()
        elif now - self._loaded_at >= RELOAD_SECONDS:
            await self._reload()
        found = self._keys.get(kid)
        if found is None or not found.verifies(datetime.now(UTC), self._lifetime):
            return None
        return self._imported_key(found)

    def _newest(self) -> StoredKey | None:
        in_use = [k for k in self._keys.values() if k.retired_at is None]
        return max(in_use, key=lambda k: (k.created_at, k.kid), default=None)

    def _imported_key(self, stored: StoredKey) -> SigningKey:
        found = self._imported.get(stored.kid)
        if found is None:
            found = SigningKey(stored.kid, OctKey.import_key(stored.secret.encode()))
            self._imported[stored.kid] = found
        return found

    def _take(self, keys: list[StoredKey]) -> None:
        self._keys = {k.kid: k for k in keys}
        self._imported = {kid: k for kid, k in self._imported.items() if kid in self._keys}
        self._loaded_at = time.monotonic()

    async def _reload(self) -> None:
        began = time.monotonic()
        async with self._lock:
            if self._loaded_at >= began:
                return  # read by whoever held the lock meanwhile
            try:
                async with self._engine.connect() as conn:
                    self._take(await _all(conn))
            except (OSError, SQLAlchemyError) as error:
                # The keys known so far go on verifying; tried again a little later.
                log.warning("could not read the signing keys: %r", error)
                self._loaded_at = time.monotonic() - RELOAD_SECONDS + UNKNOWN_KID_RELOAD_SECONDS


async def keys_for(engine: AsyncEngine, jwt_secret: str | None, lifetime_seconds: int) -> Keys:
    """JWT_SECRET's one key when it is set, else the database's keys (read, and the
    first one made, now)."""
    if jwt_secret:
        return FixedKey(jwt_secret)
    ring = KeyRing(engine, lifetime_seconds)
    await ring.start()
    return ring
