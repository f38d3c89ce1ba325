"""Domain events between server processes, over broadcaster.

In-memory when REDIS_URL is unset (one process), Redis pub/sub when set. Each process
subscribes once (realtime/dispatch.py reads it and fans out to its own subscribers), so
broadcaster's unbounded queue has a single, prompt reader.

broadcaster's own Redis backend listens in a task that dies silently when the
connection drops, after which its subscribers wait forever (encode/broadcaster#144).
`ResilientRedisBackend` replaces it: it reconnects (infra/resilience.py's retries, with
jittered backoff, so processes that lost one Redis do not come back in step), resubscribes,
and then delivers `RESYNC`, because pub/sub keeps nothing that was published while it was
down: whoever shows live state must show it afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from broadcaster import Broadcast
from broadcaster._backends.base import BroadcastBackend
from broadcaster._base import Event as Message
from redis.asyncio import Redis
from redis.exceptions import RedisError

from infra import lifecycle
from infra.resilience import retrying, within

log = logging.getLogger(__name__)

RESYNC = ""  # the message that says: messages may have been lost
PING_EVERY = 5.0  # seconds: a Redis that went silent without closing is noticed this fast
TIMEOUT = 1.0
RECONNECT_FIRST_WAIT = 0.1  # seconds: after a lost connection, before the first try
RECONNECT_MAX_WAIT = 2.0  # seconds: the longest pause between two tries to reconnect


class ResilientRedisBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher = Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.connected = False

    async def connect(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="redis-pubsub")

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._publisher.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._changed.set()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._changed.set()

    async def publish(self, channel: str, message: Any) -> None:
        await self._publisher.publish(channel, message)

    async def next_published(self) -> Message:
        return await self._queue.get()

    async def _listen(self) -> None:
        """Connects and subscribes (retried with jitter until it works), reads until the
        connection fails, and starts over."""
        ever_connected = False
        while True:
            while not self._channels:
                self._changed.clear()
                await self._changed.wait()
            client, pubsub, subscribed = await self._subscribed()
            try:
                self.connected = True
                if ever_connected:
                    log.warning("Redis is back: resubscribed to %s", sorted(subscribed))
                    for channel in subscribed:
                        self._queue.put_nowait(Message(channel, RESYNC))
                ever_connected = True
                await self._read(pubsub, subscribed)
            except (RedisError, OSError, TimeoutError) as error:
                log.warning("Redis pub/sub lost (%s): reconnecting", error)
            finally:
                self.connected = False
                await _quietly_close(pubsub, client)
            # Not at once: a connection that breaks as soon as it is made must not turn
            # into a loop of reconnections, each announcing a resync.
            await lifecycle.pause(RECONNECT_FIRST_WAIT)

    async def _subscribed(self) -> tuple[Redis, Any, set[str]]:
        """A new connection subscribed to the channels, once Redis takes one. Between
        tries a random pause of up to 0.1 s, 0.2 s, 0.4 s... 2 s."""
        async for attempt in retrying(
            on=(RedisError, OSError, TimeoutError),
            attempts=None,
            first_wait=RECONNECT_FIRST_WAIT,
            max_wait=RECONNECT_MAX_WAIT,
            sleep=lifecycle.pause,
        ):
            with attempt:
                client = Redis.from_url(
                    self._url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                subscribed = set(self._channels)
                try:
                    await pubsub.subscribe(*subscribed)
                except BaseException:
                    await _quietly_close(pubsub, client)
                    raise
                return client, pubsub, subscribed
        raise AssertionError("retrying without a limit ended")  # never: it re-raises

    async def _read(self, pubsub: Any, subscribed: set[str]) -> None:
        loop = asyncio.get_running_loop()
        pinged = loop.time()
        while True:
            if self._channels != subscribed:
                added, gone = self._channels - subscribed, subscribed - self._channels
                if added:
                    await pubsub.subscribe(*added)
                if gone:
                    await pubsub.unsubscribe(*gone)
                subscribed.clear()
                subscribed.update(self._channels)
            message = await pubsub.get_message(timeout=TIMEOUT / 2)
            if message is not None and message["type"] == "message":
                channel, data = message["channel"], message["data"]
                self._queue.put_nowait(
                    Message(
                        channel.decode() if isinstance(channel, bytes) else channel,
                        data.decode() if isinstance(data, bytes) else data,
                    )
                )
            if loop.time() - pinged > PING_EVERY:
                await pubsub.ping()  # the answer arrives as a message; a dead peer raises
                pinged = loop.time()


async def _quietly_close(pubsub: Any, client: Redis) -> None:
    # Not wait_for: in Python 3.11 it swallows a cancellation that arrives as the close
    # ends, and the listener would go on after `disconnect` cancelled it.
    try:
        async with within(TIMEOUT):
            await pubsub.aclose()
        async with within(TIMEOUT):
            await client.aclose()
    except (RedisError, OSError, TimeoutError):
        pass


class EventBus:
    """Publishes batches of encoded domain events; delivers every batch to each process."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.backend: BroadcastBackend | None = None
        if redis_url:
            self.backend = ResilientRedisBackend(redis_url)
            self.broadcast = Broadcast(backend=self.backend)
        else:
            self.broadcast = Broadcast("memory://")
        self.channel = f"{prefix}events"

    @property
    def healthy(self) -> bool:
        """Whether messages published now reach every process (in memory: always)."""
        return not isinstance(self.backend, ResilientRedisBackend) or self.backend.connected

    async def connect(self) -> None:
        await self.broadcast.connect()

    async def disconnect(self) -> None:
        await self.broadcast.disconnect()

    async def publish(self, data: bytes) -> None:
        await self.broadcast.publish(self.channel, data.decode())

    @asynccontextmanager
    async def messages(self) -> AsyncIterator[AsyncIterator[str]]:
        """The messages of this channel: encoded event batches, or RESYNC."""
        async with self.broadcast.subscribe(self.channel) as subscriber:

            async def each() -> AsyncIterator[str]:
                while True:
                    message = await subscriber.get()
                    yield message.message

            yield each()
