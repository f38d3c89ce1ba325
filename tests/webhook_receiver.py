"""A webhook receiver on loopback for the tests: a small HTTP/1.1 server (asyncio streams,
one request per connection) that keeps every request and verifies each with the
`standardwebhooks` library, as a real receiver would, with the secret registered for its
path. What it answers is set per test: 200, a 500, a redirect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

REASONS = {200: "OK", 204: "No Content", 302: "Found", 404: "Not Found", 500: "Server Error"}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    event: Any = None  # the verified, parsed body
    error: str | None = None  # why it did not verify

    @property
    def verified(self) -> bool:
        return self.error is None


@dataclass
class Receiver:
    port: int = 0
    status: int = 200  # what every request is answered with
    location: str | None = None  # for a redirect
    secrets: dict[str, str] = field(default_factory=dict)  # path -> signing secret
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering
    failing: set[str] = field(default_factory=set)  # webhook-ids answered 500 whatever `status`

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").strip()
            if not request_line:
                return
            method, path, _ = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                line = (await reader.readline()).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received = Received(method, path, headers, body)
            secret = self.secrets.get(path)
            if secret is None:
                received.error = "no secret registered for this path"
            else:
                try:
                    received.event = Webhook(secret).verify(body, headers)
                except WebhookVerificationError as error:
                    received.error = str(error)
            self.received.append(received)
            if self.delay:
                await asyncio.sleep(self.delay)
            status = 500 if headers.get("webhook-id") in self.failing else self.status
            reason = REASONS.get(status, "Status")
            extra = f"Location: {self.location}\r\n" if self.location else ""
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\n{extra}"
                "Content-Length: 2\r\nConnection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver listening on a free loopback port until the block ends."""
    found = Receiver()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()
