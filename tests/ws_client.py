"""A small GraphQL-over-WebSocket client for tests: both protocols, raw frames visible."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

AVAILABILITY_CHANGED = """
subscription($serviceId: ID!, $start: DateTime!, $end: DateTime!, $staffId: ID) {
  availabilityChanged(serviceId: $serviceId, start: $start, end: $end, staffId: $staffId) {
    timeZone slots { start end remainingCapacity staff { id } }
  }
}"""

BOOKING_CHANGED = """
subscription($id: ID!, $token: String) {
  bookingChanged(bookingId: $id, manageToken: $token) { id status start end }
}"""


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


class Socket:
    """One connection; `next()` returns the next message (a dict)."""

    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol

    @property
    def legacy(self) -> bool:
        return self.protocol == LEGACY_WS

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def next(self, seconds: float = 5.0) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), seconds)
            message: dict[str, Any] = orjson.loads(raw)
            if message["type"] in ("ka", "ping", "pong"):
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                continue
            return message

    async def init(self, token: str | None = None) -> dict[str, Any]:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.next()

    async def subscribe(
        self, query: str, variables: dict[str, Any], subscription_id: str | None = None
    ) -> str:
        subscription_id = subscription_id or uuid.uuid4().hex[:8]
        kind = "start" if self.legacy else "subscribe"
        await self.send(
            {
                "type": kind,
                "id": subscription_id,
                "payload": {"query": query, "variables": variables},
            }
        )
        return subscription_id

    async def data(self, seconds: float = 5.0) -> dict[str, Any]:
        """The payload of the next `next` (or legacy `data`) message; fails on others."""
        message = await self.next(seconds)
        assert message["type"] in ("next", "data"), message
        payload: dict[str, Any] = message["payload"]
        return payload

    async def closed(self, seconds: float = 5.0) -> tuple[int | None, str | None]:
        """Waits for the server to close: its code and reason."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.connection.recv(), seconds)
        return self.connection.close_code, self.connection.close_reason


@contextlib.asynccontextmanager
async def socket(base_url: str, protocol: str = TRANSPORT_WS) -> AsyncIterator[Socket]:
    async with connect(
        ws_url(base_url),
        subprotocols=[Subprotocol(protocol)],
        open_timeout=5,
        compression=None,
    ) as connection:
        yield Socket(connection, protocol)
