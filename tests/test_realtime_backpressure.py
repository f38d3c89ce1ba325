"""A subscriber that stops reading while its window keeps changing, with big answers: the
server closes it (1008) instead of queueing for it without bound, and lets it go."""

from __future__ import annotations

import asyncio
import contextlib
import socket as sockets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.business import Business, Person, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.realtime_helpers import PUSH, book, data_for, day_window, monday, until
from tests.test_availability_api import local
from tests.ws_client import TRANSPORT_WS, Socket, ws_url

if TYPE_CHECKING:
    from realtime.feeds import AvailabilityFeed
    from realtime.hub import Hub
    from realtime.websocket import Connection

STAFF = 12
DAYS = 7
PENDING = 4  # realtime.websocket.MAX_PENDING for these tests: a quick overflow
# A big answer: 7 days x 24 slots, each naming the 12 staff members who can take it.
BIG = """
subscription($serviceId: ID!, $start: DateTime!, $end: DateTime!) {
  availabilityChanged(serviceId: $serviceId, start: $start, end: $end) {
    slots { start end remainingCapacity staff { id name timeZone } }
  }
}"""
MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def slow_socket(base_url: str) -> AsyncIterator[Socket]:
    """A transport-ws connection that holds little unread: a 4 KiB receive buffer and a
    queue of one message in the client library."""
    raw = sockets.socket(sockets.AF_INET, sockets.SOCK_STREAM)
    raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
    raw.setblocking(False)
    host, port = base_url.removeprefix("http://").split(":")
    try:
        await asyncio.get_running_loop().sock_connect(raw, (host, int(port)))
    except BaseException:
        raw.close()
        raise
    async with connect(
        ws_url(base_url),
        sock=raw,
        subprotocols=[Subprotocol(TRANSPORT_WS)],
        compression=None,
        max_queue=1,
        max_size=None,
        ping_interval=None,
        open_timeout=5,
        close_timeout=2,
    ) as connection:
        yield Socket(connection, TRANSPORT_WS)


def server_side(hub: Hub, before: set[Connection]) -> Connection:
    [mine] = set(hub.connections) - before
    return mine


def feed_of(hub: Hub, connection: Connection, subscription_id: str) -> AvailabilityFeed:
    [feed] = [
        f
        for f in hub.feeds.availability.values()
        if (id(connection), subscription_id) in f.subscribers
    ]
    return feed


def free_starts() -> list[str]:
    """Every start of the window, one booking per start (08:00-20:00, every day)."""
    return [
        local(monday() + timedelta(days=d), 8 + i // 2, 30 * (i % 2))
        for i in range(24)
        for d in range(DAYS)
    ]


@pytest.fixture
def few_pending(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    import realtime.websocket  # after the app (importing it first is circular)

    monkeypatch.setattr(realtime.websocket, "MAX_PENDING", PENDING)


async def big_business(gql: GraphQLClient) -> tuple[Business, Person]:
    biz = await create_business(
        gql,
        staff_count=STAFF,
        hours=[("08:00", "20:00")],
        weekdays=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
    )
    return biz, await sign_up(gql)


async def overflow(
    gql: GraphQLClient, hub: Hub, biz: Business, customer: Person, mine: Connection, sid: str
) -> tuple[int, int]:
    """Changes the window, one push at a time, until the server gives up on the
    connection: how many bookings it took, and the most bytes its queue held."""
    feed = feed_of(hub, mine, sid)
    starts = iter(free_starts())
    made = peak = 0

    def pushed_or_closed(version: int) -> bool:
        nonlocal peak
        peak = max(peak, sum(len(m) for m in mine.outbox or ()))
        return mine.closing or feed.rendered_version > version

    while not mine.closing:
        assert made < 60, "the server kept queueing for a client that does not read"
        version = feed.rendered_version
        await book(gql, customer, biz.service_id, next(starts), biz.staff_ids[made % STAFF])
        made += 1
        await until(lambda: pushed_or_closed(version))  # noqa: B023
    return made, peak


async def read_until_closed(ws: Socket, seconds: float) -> list[Any]:
    """Reads everything left until the server's close; what was read."""
    read: list[Any] = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            read.append(await asyncio.wait_for(ws.connection.recv(), seconds))
    return read


async def test_a_subscriber_that_does_not_read_is_closed_with_1008(
    gql: GraphQLClient, server: Server, few_pending: None
) -> None:
    biz, customer = await big_business(gql)
    hub: Hub = server.app_state.realtime
    process = psutil.Process()
    before = set(hub.connections)
    async with slow_socket(server.base_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        mine = server_side(hub, before)
        sid = await ws.subscribe(BIG, {"serviceId": biz.service_id, **day_window(monday(), DAYS)})
        snapshot = await data_for(ws, sid)
        size = len(str(snapshot))
        assert size > 100_000  # each push is this big
        slots = snapshot["data"]["availabilityChanged"]["slots"]
        assert len(slots) == DAYS * 24
        rss_before = process.memory_info().rss

        # From now on the client reads nothing.
        made, peak = await overflow(gql, hub, biz, customer, mine, sid)
        assert made >= PENDING  # the kernel's and the transport's buffers took some
        assert peak <= PENDING * (size + 1000)  # the queue: at most PENDING pushes
        # Closed: nothing more is queued for it, however much changes.
        for start in free_starts()[made : made + 5]:
            await book(gql, customer, biz.service_id, start, biz.staff_ids[0])
        await asyncio.sleep(0.2)  # their pushes (50 ms coalescing) would be queued by now
        assert not mine.outbox
        grown = process.memory_info().rss - rss_before
        assert grown < 100 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"

        # Reading again: whatever was in flight, then the server's close.
        read = await read_until_closed(ws, PUSH)
        assert len(read) < made + 2
        assert ws.connection.close_code == 1008, (ws.connection.close_code, len(read))
        assert (ws.connection.close_reason or "").startswith("not reading")
    # The server forgot the connection and its subscription.
    await until(lambda: mine not in hub.connections)
    assert all((id(mine), sid) not in f.subscribers for f in hub.feeds.availability.values())


async def test_the_server_lets_go_of_a_subscriber_that_never_reads_again(
    gql: GraphQLClient, server: Server, few_pending: None
) -> None:
    """Once the server has given up on a client that does not read, the client may never
    read again: the server must not keep its connection and subscriptions waiting for it.
    (The close frame cannot be delivered: the client's buffers are full.)"""
    biz, customer = await big_business(gql)
    hub: Hub = server.app_state.realtime
    before = set(hub.connections)
    async with slow_socket(server.base_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        mine = server_side(hub, before)
        sid = await ws.subscribe(BIG, {"serviceId": biz.service_id, **day_window(monday(), DAYS)})
        await data_for(ws, sid)
        feed = feed_of(hub, mine, sid)
        await overflow(gql, hub, biz, customer, mine, sid)
        try:
            # Still not reading. The closing handshake gets 5 s (realtime/websocket.py);
            # after that the server must stop serving this connection.
            with contextlib.suppress(AssertionError):
                await until(lambda: mine not in hub.connections, seconds=9, every=0.1)
            state = {
                "closing": mine.closing,
                "close handshake over": mine.closed is not None and mine.closed.done(),
                "still served": mine in hub.connections,
                "still subscribed": (id(mine), sid) in feed.subscribers,
            }
            assert state == {
                "closing": True,
                "close handshake over": True,
                "still served": False,
                "still subscribed": False,
            }
        finally:
            with contextlib.suppress(TimeoutError):
                await read_until_closed(ws, 2)
