"""`python -m commands.rotate_jwt_key`: a new key signs access tokens from now on.

Nobody is signed out: the retired key goes on verifying the tokens it signed until they
expire (ACCESS_TOKEN_MINUTES, plus a minute), on every process, which all read the keys
from the database. Keys retired long ago are deleted. Run it on a schedule (cron, a
Kubernetes CronJob) or after a suspected leak (then also delete the leaked key's row,
docs/identity.md).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from domain.users.signing_keys import rotate
from infra.database import create_engine, libpq_url
from infra.settings import Settings


async def rotate_url(url: str, settings: Settings) -> tuple[str, list[str]]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await rotate(conn, timedelta(minutes=settings.access_token_minutes))
    finally:
        await engine.dispose()


def main() -> None:
    settings = Settings.from_env()
    if settings.jwt_secret:
        sys.exit(
            "JWT_SECRET is set: that key signs every access token and is not rotated here."
            " Unset it to use the database's rotating keys, or change it (every access"
            " token then fails once and clients refresh their sessions)."
        )
    kid, pruned = asyncio.run(rotate_url(libpq_url(settings), settings))
    print(f"new signing key: {kid}")
    if pruned:
        print(f"deleted retired keys: {', '.join(pruned)}")


if __name__ == "__main__":
    main()
