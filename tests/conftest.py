"""Test fixtures: a real PostgreSQL database of our own, a real HTTP server.

Each test session creates a uniquely named database on TEST_DATABASE_URL's server
(default: the local one) and drops it afterwards. Under CI=true a missing server
fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from infra import jobs
from infra.settings import ROOT

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
RATE_LIMITS_IN_TESTS = "off"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {error}")


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name = f"booking_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(ADMIN_URL, name)
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass
class StatementCounter:
    """Counts the SQL statements the server sends while `counting`: those run through
    SQLAlchemy and those run on asyncpg directly (database.driver), not counting
    transaction control."""

    count: int = 0
    statements: list[str] = field(default_factory=list)
    active: bool = False

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.note(statement)

    def note(self, statement: str) -> None:
        if jobs.in_background.get():
            return  # a periodic job that happened to run meanwhile, not the request's
        if self.active and not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            self.count += 1
            self.statements.append(statement)

    def attach(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self)

        def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            raw = dbapi_connection.driver_connection
            if raw not in watched:
                # asyncpg logs what runs on it directly (not SQLAlchemy's prepared
                # statements, which the event above counts) after the statement.
                raw.add_query_logger(lambda query: self.note(query.query))
                watched.add(raw)

        watched: weakref.WeakSet[Any] = weakref.WeakSet()
        event.listen(engine.sync_engine, "checkout", checkout)

    def start(self) -> None:
        self.count, self.statements, self.active = 0, [], True

    def stop(self) -> int:
        self.active = False
        return self.count


@dataclass
class Server:
    base_url: str
    counter: StatementCounter
    app_state: Any


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every app of the session writes its mail (MAIL_DIR; tests/mailbox.py reads
    it): the in-process server, and the processes tests start, which inherit it."""
    directory = tmp_path_factory.mktemp("mail")
    os.environ["MAIL_DIR"] = str(directory)
    return directory


@pytest.fixture(scope="session")
async def server(database_url: str, mail_dir: Path) -> AsyncIterator[Server]:
    """The real app on a loopback port, in this event loop."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("JWT_SECRET", None)
    # Every test's client is 127.0.0.1: per-address rate limits would make the suite's
    # order matter. tests/test_rate_limits.py runs apps of its own with them on.
    os.environ["RATE_LIMITS"] = RATE_LIMITS_IN_TESTS
    from app import app, starlette_app

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws="realtime.uvicorn_ws:LeanWebSocketProtocol",  # as `make run` serves
    )
    uvicorn_server = uvicorn.Server(config)
    task = asyncio.create_task(uvicorn_server.serve())
    while not uvicorn_server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    counter = StatementCounter()
    counter.attach(starlette_app.state.engine)
    try:
        yield Server(f"http://127.0.0.1:{port}", counter, starlette_app.state)
    finally:
        uvicorn_server.should_exit = True
        await task


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The data of a query that must not fail."""
        body = await self.raw(query, variables, token)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def gql(server: Server) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield GraphQLClient(http)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
