"""Real processes for tests: `uvicorn app:app` servers and redis-servers of our own.

Whatever is started here is stopped by the context manager that started it, whether the
test passed or failed: SIGTERM, then SIGKILL after a grace period, and always reaped.
Every app process of a test session shares one JWT secret (a token from one works on the
others) and one Redis key prefix of its own, so we never touch anyone else's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from infra.settings import ROOT
from tests.conftest import (
    ADMIN_URL,
    IN_CI,
    RATE_LIMITS_IN_TESTS,
    GraphQLClient,
    _admin,
    free_port,
    migrate,
    with_database,
)

# One per test session.
REDIS_PREFIX = f"test-{uuid.uuid4().hex}:"
JWT_SECRET = secrets.token_urlsafe(32)
# The machine's Redis; when it does not answer, a redis-server of our own stands in.
SHARED_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# What the app process must not inherit from the test's environment.
APP_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PREFIX",
    "JWT_SECRET",
    "BOOKING_HOLD_SECONDS",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "STRIPE_TIMEOUT_SECONDS",
    "RATE_LIMITS",
    "TRUSTED_PROXIES",
    "SMS_PROVIDER",
    "SMS_API_BASE",
)


def _spawn(
    args: list[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Starts a process whose stdout and stderr go to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(
    popen: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> None:
    """Stops and reaps the process (SIGKILL when `sig` is not enough in `timeout` s)."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            popen.send_signal(sig)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
    popen.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# ---- the app ------------------------------------------------------------------------------


@dataclass
class AppProcess:
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the process printed so far (warnings and errors only)."""
        return _read(self.log_path)


@dataclass
class Apps:
    processes: list[AppProcess]
    redis_url: str
    redis_prefix: str

    def mark(self) -> list[int]:
        """Where each process's log ends now, for `logs(since=...)`."""
        return [len(p.log()) for p in self.processes]

    def logs(self, since: list[int] | None = None) -> str:
        """What the processes printed (since `mark()` when given)."""
        offsets = since or [0] * len(self.processes)
        return "\n".join(
            f"--- {p.base_url}\n{p.log()[offset:]}"
            for p, offset in zip(self.processes, offsets, strict=True)
        )

    @contextlib.asynccontextmanager
    async def clients(self, seconds: float = 60.0) -> AsyncIterator[list[GraphQLClient]]:
        """One GraphQL client per process, in the processes' order."""
        async with contextlib.AsyncExitStack() as stack:
            clients = []
            for process in self.processes:
                http = await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=process.base_url,
                        timeout=seconds,
                        limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
                    )
                )
                clients.append(GraphQLClient(http))
            yield clients


def app_environment(
    database_url: str, redis_url: str | None, redis_prefix: str, jwt_secret: str | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS}
    env["DATABASE_URL"] = database_url
    env["REDIS_PREFIX"] = redis_prefix
    # Several of these beside the in-process server share one PostgreSQL (100
    # connections): a test's few requests at a time need no more than this.
    env.setdefault("DATABASE_POOL_SIZE", "10")
    env["RATE_LIMITS"] = RATE_LIMITS_IN_TESTS  # as the in-process server; settings= may differ
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if jwt_secret is not None:
        env["JWT_SECRET"] = jwt_secret
    return env


async def wait_ready(processes: list[AppProcess]) -> None:
    """Until every process answers 200 on /readyz (its database is reachable)."""
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as http:
        for process in processes:
            while True:
                if process.popen.poll() is not None:
                    raise AssertionError(
                        f"{process.base_url} exited with {process.popen.returncode}:\n"
                        f"{process.log()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{process.base_url}/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{process.base_url} not ready in {READY_TIMEOUT} s:\n{process.log()}"
                    )
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_apps(
    database_url: str,
    *,
    count: int = 2,
    redis_url: str | None,
    redis_prefix: str = REDIS_PREFIX,
    jwt_secret: str | None = JWT_SECRET,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Apps]:
    """`count` processes of `uvicorn app:app` on free loopback ports, ready to serve;
    `settings`: more environment variables (STRIPE_API_BASE, BOOKING_HOLD_SECONDS...)."""
    env = app_environment(database_url, redis_url, redis_prefix, jwt_secret)
    env.update(settings or {})
    with tempfile.TemporaryDirectory(prefix="booking-apps-") as logs:
        processes: list[AppProcess] = []
        try:
            for i in range(count):
                port = free_port()
                log_path = Path(logs) / f"app-{i}.log"
                args = [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--timeout-graceful-shutdown",
                    "5",
                ]
                processes.append(AppProcess(port, _spawn(args, log_path, env), log_path))
            await wait_ready(processes)
            yield Apps(processes, redis_url or "", redis_prefix)
        finally:
            await asyncio.gather(*(asyncio.to_thread(stop_process, p.popen) for p in processes))


# ---- Redis --------------------------------------------------------------------------------


def redis_client(url: str) -> Redis:
    """A client configured as the app configures its own (app.py's lifespan)."""
    return Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


async def answers(url: str) -> bool:
    client = redis_client(url)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def forget_keys(url: str, prefix: str) -> None:
    """Deletes the keys under our prefix, and only those."""
    assert prefix.startswith("test-")
    assert not any(c in prefix for c in "*?[]\\")
    client = redis_client(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    except (RedisError, OSError):
        pass  # leases expire by themselves
    finally:
        await client.aclose()


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not on PATH")
        pytest.skip("redis-server is not on PATH")
    return binary


@dataclass
class RedisServer:
    """A redis-server of the test's own, on a loopback port that stays the same across
    kill and start."""

    binary: str
    port: int
    directory: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    async def start(self) -> None:
        assert self.popen is None or self.popen.poll() is not None, "already running"
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self.popen = _spawn(args, self.log_path)
        deadline = time.monotonic() + 10
        while not await answers(self.url):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server did not start:\n{_read(self.log_path)}")
            await asyncio.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: gone at once, no goodbye to its clients."""
        assert self.popen is not None
        stop_process(self.popen, signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.popen is not None:
            stop_process(self.popen)

    async def command_calls(self, command: str) -> int:
        """How often the server ran `command` since it started."""
        client = redis_client(self.url)
        try:
            stats: dict[str, Any] = await client.info("commandstats")
        finally:
            await client.aclose()
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@contextlib.asynccontextmanager
async def owned_redis() -> AsyncIterator[RedisServer]:
    """A fresh redis-server on a free port (no persistence), stopped at the end."""
    binary = redis_binary()
    with tempfile.TemporaryDirectory(prefix="test-redis-") as directory:
        server = RedisServer(binary, free_port(), Path(directory))
        try:
            await server.start()
            yield server
        finally:
            server.stop()


@contextlib.asynccontextmanager
async def shared_redis() -> AsyncIterator[str]:
    """The machine's Redis when it answers, else a redis-server of our own."""
    if await answers(SHARED_REDIS_URL):
        yield SHARED_REDIS_URL
        return
    async with owned_redis() as server:
        yield server.url


# ---- databases ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def own_database() -> AsyncIterator[str]:
    """A fresh, migrated database of its own, dropped afterwards. Every app process runs an
    outbox relay that drains its database's outbox to its own bus: processes that must
    see each other's events need a database no other process (the in-process test server,
    another fleet on another Redis) drains."""
    name = f"booking_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(ADMIN_URL, name)
        try:
            await asyncio.to_thread(migrate, url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# ---- fixtures -----------------------------------------------------------------------------


def app_processes(
    name: str,
    *,
    count: int = 2,
    redis: Literal["shared", "down"] = "shared",
    database: Literal["session", "own"] = "session",
) -> Callable[..., Any]:
    """A module-scoped fixture called `name`: `count` app processes on the session's test
    database (database="own": on a database of their own, see `own_database`).
    redis="shared": the machine's Redis under this session's prefix;
    redis="down": REDIS_URL names a loopback port nobody listens on."""

    @pytest_asyncio.fixture(name=name, scope="module", loop_scope="session")
    async def fixture(database_url: str) -> AsyncIterator[Apps]:
        async with contextlib.AsyncExitStack() as stack:
            if database == "own":
                # Dropped last (last in, first out): after the processes stopped.
                database_url = await stack.enter_async_context(own_database())
            if redis == "shared":
                redis_url = await stack.enter_async_context(shared_redis())
                # After the processes stop (last in, first out): leases left behind go.
                stack.push_async_callback(forget_keys, redis_url, REDIS_PREFIX)
            else:
                redis_url = f"redis://127.0.0.1:{free_port()}/0"
            yield await stack.enter_async_context(
                running_apps(database_url, count=count, redis_url=redis_url)
            )

    return fixture
