"""uvicorn's WebSocket protocol, lighter for thousands of idle subscribers.

    uvicorn app:app --ws realtime.uvicorn_ws:LeanWebSocketProtocol --ws-per-message-deflate false

uvicorn (websockets-sansio) keeps the handshake's request and response objects, ~4.7 KiB,
for as long as the connection lives, though it never reads them again once the accept
has been sent. This subclass lets go of them then. Everything else is uvicorn's own.
`make run` uses it; plain `uvicorn app:app` works without it, heavier per subscriber.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    async def send(self, message: Any) -> None:
        accepting = not self.handshake_complete and message.get("type") == "websocket.accept"
        await super().send(message)
        if accepting and self.handshake_complete:
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
