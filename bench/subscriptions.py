"""Benchmark of `availabilityChanged` subscriptions: push delay and memory per subscriber.

    .venv/bin/python bench/subscriptions.py [--counts 100,1000,5000] [--deflate off,on]

A database of its own (as bench/availability.py makes it) is created, migrated and
dropped at the end; one business (5 staff, a 30-minute one-to-one service on a 30-minute
grid, the availability bench's week) is set up over the GraphQL API.

For each subscriber count N, two fresh `uvicorn app:app` processes share that database
and the machine's Redis (REDIS_URL, a REDIS_PREFIX unique to this run). N subscribers
open GraphQL-over-WebSocket connections (graphql-transport-ws), alternating between the
two processes, each as an SPA would: `connection_init`, then one `availabilityChanged`
subscription with the same document, anonymous, on one of WINDOWS one-week windows
(any staff member), so each process holds WINDOWS feeds. They are opened
OPEN_CONCURRENCY at a time by one asyncio client process (the `websockets` library).

1. Memory: the resident set (RSS) of the two server processes once every subscriber has
   its snapshot and a second has passed, minus their RSS before (after a warm-up of one
   subscriber per window and process, closed again), divided by N.
2. Push delay: BOOKINGS bookings over HTTP, one every BOOKING_EVERY seconds, alternating
   between the processes, each in one watched window (round robin). For each booking and
   each subscriber of its window: the arrival of the first push, sent after the booking
   was, whose slots no longer offer the booked staff member at the booked start, minus
   the arrival of the booking's HTTP response. A subscriber without such a push within
   PUSH_TIMEOUT seconds counts as missed.

The client only time-stamps each message as it arrives and keeps its bytes; everything
is parsed after the timed part. The bookings go out from a thread (a synchronous httpx
client), so their responses are time-stamped as they arrive even while the event loop
is busy with pushes. Client, servers, PostgreSQL and Redis share the machine's CPUs;
the output gives the CPU each used. The bench raises its open-files limit to the hard
limit; the servers, its children, inherit it.

`--deflate off` starts uvicorn with `--ws-per-message-deflate false` and the client
offers no compression; `--deflate on` is uvicorn's default (permessage-deflate) with a
client that offers it, as browsers do. (A client that offers no compression gets none,
whatever the server's flag.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import resource
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import psutil
import uvicorn
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol
from websockets.version import version as websockets_version

ROOT = Path(__file__).resolve().parent.parent
LEAN = os.environ.get("BENCH_WS", "lean") == "lean"  # uvicorn with realtime/uvicorn_ws.py
if str(ROOT) not in sys.path:  # run as a script: `bench` is a package of the checkout
    sys.path.insert(0, str(ROOT))

from bench.availability import (  # noqa: E402
    HEADERS,
    SIGN_UP,
    Api,
    Server,
    first_monday,
    rfc3339,
    running_server,
    scratch_database,
)
from bench.availability import create_business as create_base_business  # noqa: E402
from bench.booking import (  # noqa: E402
    REDIS_URL,
    CpuMeter,
    Profiler,
    booking_body,
)

ZONE = "Europe/Berlin"
STAFF = 5
WINDOWS = 4  # one-week windows, weeks 1..WINDOWS from the first Monday a week ahead
SERVICE = {
    "name": "Consultation",
    "durationMinutes": 30,
    "slotIntervalMinutes": 30,
    "maxAdvanceDays": 90,
    "capacity": 1,
}
# Bookable starts per working day of WEEK on a 30-minute grid (Mon-Fri).
STARTS = [9 * 60 + 30 * i for i in range(7)] + [13 * 60 + 30 + 30 * i for i in range(7)]
OPEN_CONCURRENCY = 200  # connections being opened at a time
BOOKINGS = 10
BOOKING_EVERY = 0.3  # seconds
PUSH_TIMEOUT = 10.0  # seconds after the booking's response
SETTLE = 1.0  # seconds before reading the servers' memory
MEMORY_AIM_KIB = 20.0
TRANSPORT_WS = "graphql-transport-ws"

# What an SPA showing a week of any staff member's free slots asks for (the same
# document as tests/ws_client.py's).
AVAILABILITY_CHANGED = """
subscription($serviceId: ID!, $start: DateTime!, $end: DateTime!, $staffId: ID) {
  availabilityChanged(serviceId: $serviceId, start: $start, end: $end, staffId: $staffId) {
    timeZone slots { start end remainingCapacity staff { id } }
  }
}"""
INIT = orjson.dumps({"type": "connection_init", "payload": {}}).decode()
PONG = orjson.dumps({"type": "pong"}).decode()


def p99_aim_ms(count: int) -> float:
    """The issue's aims: p99 under 250 ms at 1,000 subscribers, under 1 s at 5,000
    (counts up to 1,000 are held to the 1,000 aim)."""
    return 250.0 if count <= 1000 else 1000.0


# ---- business -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Business:
    service_id: str
    staff_ids: list[str]
    windows: list[tuple[datetime, datetime]]  # local midnight Monday .. next Monday

    def slots(self, window: int) -> Iterator[tuple[str, datetime]]:
        """Distinct (staff member, start) pairs of a window, never the same twice."""
        monday = self.windows[window][0]
        for minutes in STARTS:
            for day in range(5):
                for staff_id in self.staff_ids:
                    yield staff_id, monday + timedelta(days=day, minutes=minutes)


async def create_business(api: Api, token: str, first: date) -> Business:
    made = await create_base_business(api, token, STAFF, SERVICE)
    service_id, staff_ids = made.service_id, made.staff_ids
    zone = ZoneInfo(ZONE)
    windows = []
    for week in range(WINDOWS + 2):  # the last two: warm-up bookings nobody watches
        day = first + timedelta(weeks=week)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        windows.append((start, start + timedelta(days=7)))
    return Business(service_id, staff_ids, windows)


def subscribe_message(business: Business, window: int) -> str:
    start, end = business.windows[window]
    variables = {"serviceId": business.service_id, "start": rfc3339(start), "end": rfc3339(end)}
    payload = {"query": AVAILABILITY_CHANGED, "variables": variables}
    # Every connection names its one subscription "1" (ids are per connection).
    return orjson.dumps({"type": "subscribe", "id": "1", "payload": payload}).decode()


# ---- servers --------------------------------------------------------------------------------


def raise_open_files_limit() -> int:
    """The soft limit on open files up to the hard one; the server processes, started as
    children, inherit it. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@asynccontextmanager
async def server_pair(database_url: str, prefix: str, deflate: bool) -> AsyncIterator[list[Server]]:
    env = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    args: tuple[str, ...] = () if deflate else ("--ws-per-message-deflate", "false")
    if LEAN:
        args += ("--ws", "realtime.uvicorn_ws:LeanWebSocketProtocol")
    async with AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(running_server(database_url, env, extra_args=args))
            for _ in range(2)
        ]
        yield servers


def rss(servers: Sequence[Server]) -> list[int]:
    return [psutil.Process(s.pid).memory_info().rss for s in servers]


def ws_url(server: Server) -> str:
    return server.base_url.replace("http://", "ws://", 1) + "/graphql"


# ---- subscribers ----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Subscriber:
    index: int
    window: int
    server: int
    connection: ClientConnection | None = None
    # (perf_counter at arrival, raw message) of everything after the snapshot
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    big: int = 0  # messages of 64 bytes or more (pushes, not pings) after the snapshot
    snapshot: bytes = b""
    error: str | None = None


async def read(subscriber: Subscriber, connection: ClientConnection) -> None:
    """Time-stamps and keeps every message; answers graphql-transport-ws pings."""
    arrivals = subscriber.arrivals
    clock = time.perf_counter
    try:
        while True:
            raw = await connection.recv(decode=False)
            arrivals.append((clock(), raw))
            if len(raw) >= 64:
                subscriber.big += 1
            elif b'"ping"' in raw:
                await connection.send(PONG)
    except ConnectionClosed:
        pass


async def next_message(connection: ClientConnection) -> bytes:
    """The next message that is not a keep-alive ping (which it answers)."""
    while True:
        raw = await connection.recv(decode=False)
        if len(raw) >= 32 or b'"ping"' not in raw:
            return raw
        await connection.send(PONG)


async def open_subscriber(
    subscriber: Subscriber, url: str, message: str, compression: str | None
) -> None:
    try:
        connection = await connect(
            url,
            subprotocols=[Subprotocol(TRANSPORT_WS)],
            compression=compression,
            open_timeout=60,
            ping_interval=None,  # the server pings; the library answers
            close_timeout=5,
            max_size=2**22,
        )
        subscriber.connection = connection
        await connection.send(INIT)
        ack = await asyncio.wait_for(next_message(connection), 60)
        if b"connection_ack" not in ack:
            raise RuntimeError(f"no connection_ack: {ack[:200]!r}")
        await connection.send(message)
        snapshot = await asyncio.wait_for(next_message(connection), 60)
        if not snapshot.startswith(b'{"type":"next"'):
            raise RuntimeError(f"no snapshot: {snapshot[:300]!r}")
        subscriber.snapshot = snapshot
        subscriber.reader = asyncio.create_task(read(subscriber, connection))
    except Exception as error:
        subscriber.error = f"{type(error).__name__}: {error}"[:300]


async def open_all(
    subscribers: Sequence[Subscriber],
    servers: Sequence[Server],
    messages: Sequence[str],
    compression: str | None,
    progress: bool,
) -> None:
    """Opens every subscriber, OPEN_CONCURRENCY at a time, in index order."""
    pending = iter(subscribers)
    done = 0
    step = max(len(subscribers) // 5, 1)
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        for s in pending:  # shared: each subscriber is taken once
            await open_subscriber(s, ws_url(servers[s.server]), messages[s.window], compression)
            done += 1
            if progress and done % step == 0 and done < len(subscribers):
                print(
                    f"    {done:,} subscribed ({time.perf_counter() - started:.1f} s)",
                    flush=True,
                )

    await asyncio.gather(*(worker() for _ in range(min(OPEN_CONCURRENCY, len(subscribers)))))


async def close_all(subscribers: Sequence[Subscriber]) -> None:
    semaphore = asyncio.Semaphore(500)

    async def close(s: Subscriber) -> None:
        async with semaphore:
            if s.connection is not None:
                try:
                    await asyncio.wait_for(s.connection.close(), 10)
                except Exception:
                    s.connection.transport.abort()
            if s.reader is not None:
                s.reader.cancel()
                await asyncio.gather(s.reader, return_exceptions=True)

    await asyncio.gather(*(close(s) for s in subscribers))


# ---- bookings and pushes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Booked:
    window: int
    server: int
    staff_id: str
    start: str  # as the API writes it
    sent: float  # perf_counter
    answered: float


def slot_map(raw: bytes) -> dict[str, frozenset[str]] | None:
    """Start -> staff ids offered, of a `next` message (None: any other message)."""
    message = orjson.loads(raw)
    if message.get("type") != "next":
        return None
    slots = message["payload"]["data"]["availabilityChanged"]["slots"]
    return {s["start"]: frozenset(m["id"] for m in s["staff"]) for s in slots}


@dataclass(slots=True)
class Pushes:
    delays: list[float] = field(default_factory=list)  # seconds, all pairs
    same_process: list[float] = field(default_factory=list)  # booked on the subscriber's
    other_process: list[float] = field(default_factory=list)
    missed: int = 0  # pairs without a push that reflects the booking in time
    missed_subscribers: int = 0
    early: int = 0  # pushes that arrived before the booking's response
    pushes: int = 0  # `next` messages after the snapshot
    idle_pushes: int = 0  # of which before the first booking was sent


def match(subscribers: Sequence[Subscriber], booked: Sequence[Booked], first_sent: float) -> Pushes:
    """For each (booking, subscriber of its window): the first push after the booking
    was sent whose slots no longer offer its staff member at its start."""
    result = Pushes()
    parsed: dict[bytes, dict[str, frozenset[str]] | None] = {}  # identical messages: once
    for s in subscribers:
        if s.error is not None:
            continue
        maps: list[tuple[float, dict[str, frozenset[str]]]] = []
        for at, raw in s.arrivals:
            if len(raw) < 64:  # ping, pong, complete
                continue
            if raw not in parsed:
                parsed[raw] = slot_map(raw)
            found = parsed[raw]
            if found is not None:
                maps.append((at, found))
                result.pushes += 1
                if at < first_sent:
                    result.idle_pushes += 1
        missed_here = False
        for b in booked:
            if b.window != s.window:
                continue
            arrival = next(
                (
                    at
                    for at, offered in maps
                    if at >= b.sent and b.staff_id not in offered.get(b.start, frozenset())
                ),
                None,
            )
            if arrival is None or arrival - b.answered > PUSH_TIMEOUT:
                result.missed += 1
                missed_here = True
                continue
            delay = arrival - b.answered
            result.early += delay < 0
            result.delays.append(delay)
            (result.same_process if b.server == s.server else result.other_process).append(delay)
        result.missed_subscribers += missed_here
    return result


def percentile(values: Sequence[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ---- one level ------------------------------------------------------------------------------


@dataclass(slots=True)
class Level:
    count: int
    deflate: bool
    opened: int = 0
    open_errors: dict[str, int] = field(default_factory=dict)
    open_seconds: float = 0.0
    # CPU ms per subscriber while subscribing: servers, PostgreSQL, client
    open_cpu_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)
    snapshot_bytes: int = 0
    rss_before: list[int] = field(default_factory=list)
    rss_after: list[int] = field(default_factory=list)
    booking_ms: list[float] = field(default_factory=list)
    booking_errors: list[str] = field(default_factory=list)
    pushes: Pushes = field(default_factory=Pushes)
    timed_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds in the timed part
    server_limits: list[int] = field(default_factory=list)

    @property
    def kib_per_subscriber(self) -> float:
        grown = sum(self.rss_after) - sum(self.rss_before)
        return grown / 1024 / max(self.opened, 1)

    @property
    def p50_ms(self) -> float:
        return percentile(self.pushes.delays, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.pushes.delays, 99) * 1000


class RedisCpu:
    """CPU seconds of the local redis-server processes (0 when none is visible)."""

    def __init__(self) -> None:
        self.processes = [
            p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"
        ]

    def read(self) -> float:
        total = 0.0
        for p in self.processes:
            try:
                times = p.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


@dataclass(frozen=True, slots=True)
class Answer:
    error: str | None
    start: str  # the booking's start as the API writes it
    staff_id: str
    sent: float  # perf_counter
    answered: float


def book(
    http: httpx.Client, business: Business, token: str, staff_id: str, start: datetime
) -> Answer:
    """One createBooking, in a thread of its own (asyncio.to_thread): the response is
    time-stamped as it arrives even while the event loop is busy with pushes."""
    body = booking_body(business.service_id, staff_id, start)
    headers = {**HEADERS, "authorization": f"Bearer {token}"}
    sent = time.perf_counter()
    response = http.post("/graphql", content=body, headers=headers)
    answered = time.perf_counter()

    def failed(error: str) -> Answer:
        return Answer(error[:300], "", "", sent, answered)

    if response.status_code != 200:
        return failed(f"HTTP {response.status_code}: {response.text}")
    answer: dict[str, Any] = orjson.loads(response.content)
    if answer.get("errors"):
        return failed(f"errors: {answer['errors']}")
    payload = answer["data"]["createBooking"]
    if payload["errors"]:
        return failed(f"payload errors: {payload['errors']}")
    booking = payload["booking"]
    return Answer(None, str(booking["start"]), str(booking["staff"]["id"]), sent, answered)


async def run_level(
    count: int,
    deflate: bool,
    database_url: str,
    prefix: str,
    business: Business,
    slots: list[Iterator[tuple[str, datetime]]],
    token: str,
    profile: Path | None,
) -> Level:
    level = Level(count, deflate)
    compression = "deflate" if deflate else None
    messages = [subscribe_message(business, w) for w in range(len(business.windows))]
    async with server_pair(database_url, prefix, deflate) as servers:
        level.server_limits = [
            psutil.Process(s.pid).rlimit(psutil.RLIMIT_NOFILE)[0] for s in servers
        ]
        pids = ", ".join(str(s.pid) for s in servers)
        print(
            f"  {count:,} subscribers, compression {'on' if deflate else 'off'}: servers pid "
            f"{pids} (open-files limit {level.server_limits[0]:,})",
            flush=True,
        )
        https = [httpx.Client(base_url=s.base_url, timeout=60) for s in servers]
        try:
            # Warm-up: one booking per process (outside every watched window), one
            # subscriber per watched window and process, then those closed again.
            warm_slots = slots[WINDOWS]
            for i, http in enumerate(https):
                staff_id, start = next(warm_slots)
                warm_answer = await asyncio.to_thread(book, http, business, token, staff_id, start)
                if warm_answer.error:
                    raise RuntimeError(f"warm-up booking on server {i}: {warm_answer.error}")
            warm = [Subscriber(i, i // 2, i % 2) for i in range(2 * WINDOWS)]
            await open_all(warm, servers, messages, compression, progress=False)
            failed = [s.error for s in warm if s.error]
            if failed:
                raise RuntimeError(f"warm-up subscribers failed: {failed[0]}")
            level.snapshot_bytes = len(warm[0].snapshot)
            assert warm[0].connection is not None
            negotiated = [e.name for e in warm[0].connection.protocol.extensions]
            if deflate != ("permessage-deflate" in negotiated):
                raise RuntimeError(f"compression {deflate}, but extensions {negotiated}")
            await close_all(warm)
            gc.collect()
            await asyncio.sleep(SETTLE)
            level.rss_before = rss(servers)

            # Every subscriber: snapshot.
            meter = CpuMeter(servers, database_url)
            subscribers = [Subscriber(i, (i // 2) % WINDOWS, i % 2) for i in range(count)]
            before = meter.read()
            started = time.perf_counter()
            await open_all(subscribers, servers, messages, compression, progress=count >= 1000)
            level.open_seconds = time.perf_counter() - started
            used = meter.read() - before
            level.opened = sum(s.error is None for s in subscribers)
            for s in subscribers:
                if s.error is not None:
                    kind = s.error.split(":")[0]
                    level.open_errors[kind] = level.open_errors.get(kind, 0) + 1
            level.open_cpu_ms = (
                used.server * 1000 / count,
                used.postgres * 1000 / count,
                used.client * 1000 / count,
            )
            print(
                f"    {level.opened:,} subscribed in {level.open_seconds:.1f} s "
                f"({level.opened / level.open_seconds:,.0f}/s); failed: "
                f"{count - level.opened}",
                flush=True,
            )
            if level.open_errors:
                example = next(s.error for s in subscribers if s.error)
                print(f"    e.g. {example}", flush=True)
            for s in subscribers:  # the snapshots are not needed any more
                s.snapshot = b""
            gc.collect()
            await asyncio.sleep(SETTLE)
            level.rss_after = rss(servers)
            print(
                f"    servers' RSS {sum(level.rss_before) / 2**20:.1f} -> "
                f"{sum(level.rss_after) / 2**20:.1f} MiB: "
                f"{level.kib_per_subscriber:.1f} KiB per idle subscriber",
                flush=True,
            )

            # The timed part: bookings, and the pushes that show them.
            profilers = []
            if profile is not None:
                for n, process in enumerate(servers):
                    name = f"subscriptions-{count}-{'deflate' if deflate else 'plain'}-{n}.txt"
                    profiler = Profiler(profile / name)
                    await profiler.start(process.pid)
                    profilers.append(profiler)
            redis_cpu = RedisCpu()
            redis_before = redis_cpu.read()
            before = meter.read()
            booked: list[Booked] = []
            received = [s.big for s in subscribers]
            first_sent = time.perf_counter()
            for i in range(BOOKINGS):
                delay = first_sent + i * BOOKING_EVERY - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                window, server = i % WINDOWS, i % 2
                staff_id, start = next(slots[window])
                answer = await asyncio.to_thread(
                    book, https[server], business, token, staff_id, start
                )
                level.booking_ms.append((answer.answered - answer.sent) * 1000)
                if answer.error:
                    level.booking_errors.append(answer.error)
                    continue
                booked.append(
                    Booked(
                        window, server, answer.staff_id, answer.start, answer.sent, answer.answered
                    )
                )
            await wait_for_pushes(subscribers, booked, received)
            level.timed_seconds = time.perf_counter() - first_sent
            used = meter.read() - before
            level.cpu = {
                "servers": used.server,
                "postgres": used.postgres,
                "redis": redis_cpu.read() - redis_before,
                "client": used.client,
            }
            for profiler in profilers:
                await profiler.stop()
            level.pushes = match(subscribers, booked, first_sent)
            print(
                f"    {len(booked)} bookings: push delay p50 {level.p50_ms:.0f} ms, "
                f"p99 {level.p99_ms:.0f} ms over {len(level.pushes.delays):,} pairs; "
                f"missed {level.pushes.missed}",
                flush=True,
            )
            await close_all(subscribers)
        finally:
            for http in https:
                http.close()
    for n, process in enumerate(servers):
        log = process.log.strip()
        if log:
            print(f"    server {n} log (last lines):", flush=True)
            print("\n".join("      " + line for line in log.splitlines()[-10:]), flush=True)
    return level


async def wait_for_pushes(
    subscribers: Sequence[Subscriber], booked: Sequence[Booked], start: Sequence[int]
) -> None:
    """Until every subscriber of a touched window has a push per booking of its window
    (pings do not count), or PUSH_TIMEOUT has passed since the last response (a push that
    shows two bookings at once leaves its subscribers one short: they wait it out).
    `start`: each subscriber's count of pushes before the first booking."""
    if not booked:
        return
    expected = [sum(b.window == w for b in booked) for w in range(WINDOWS)]
    deadline = booked[-1].answered + PUSH_TIMEOUT
    while time.perf_counter() < deadline:
        if all(
            s.big - n >= expected[s.window]
            for s, n in zip(subscribers, start, strict=True)
            if s.error is None
        ):
            return
        await asyncio.sleep(0.1)


# ---- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "meets" if ok else "misses"


def table(levels: Sequence[Level]) -> list[str]:
    lines = [
        "| subscribers | WebSocket compression | subscribed (s) | snapshot bytes "
        "| pairs | p50 ms | p99 ms | max ms | missed | p99 aim | "
        "KiB per idle subscriber | aim < 20 KiB "
        "| CPU s in the timed part (servers / PG / Redis / client) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for lv in levels:
        delays = lv.pushes.delays
        aim = p99_aim_ms(lv.count)
        ok = bool(delays) and lv.p99_ms < aim and lv.pushes.missed == 0
        aim_cell = f"< {aim:,.0f} ms: {verdict(ok)}"
        kib = lv.kib_per_subscriber
        cpu = lv.cpu
        lines.append(
            f"| {lv.count:,} | {'permessage-deflate' if lv.deflate else 'off'} "
            f"| {lv.opened:,} in {lv.open_seconds:.1f} "
            f"| {lv.snapshot_bytes:,} | {len(delays):,} | {lv.p50_ms:.0f} | {lv.p99_ms:.0f} "
            f"| {max(delays, default=float('nan')) * 1000:.0f} | {lv.pushes.missed} "
            f"| {aim_cell} | {kib:.1f} | {verdict(kib < MEMORY_AIM_KIB)} "
            f"| {cpu['servers']:.2f} / {cpu['postgres']:.2f} / {cpu['redis']:.2f} "
            f"/ {cpu['client']:.2f} |"
        )
    return lines


def details(levels: Sequence[Level]) -> list[str]:
    lines = []
    for lv in levels:
        p = lv.pushes
        same = f"{percentile(p.same_process, 50) * 1000:.0f} / "
        same += f"{percentile(p.same_process, 99) * 1000:.0f}"
        other = f"{percentile(p.other_process, 50) * 1000:.0f} / "
        other += f"{percentile(p.other_process, 99) * 1000:.0f}"
        per_booking = lv.cpu["servers"] * 1000 / BOOKINGS
        lines.append(
            f"- {lv.count:,}, compression {'on' if lv.deflate else 'off'}: subscribing cost "
            f"{lv.open_cpu_ms[0]:.2f} ms server, {lv.open_cpu_ms[1]:.2f} ms PostgreSQL and "
            f"{lv.open_cpu_ms[2]:.2f} ms client CPU per subscriber; RSS per server "
            f"{fmt_mib(lv.rss_before)} -> "
            f"{fmt_mib(lv.rss_after)} MiB; push p50 / p99 ms booked on the subscriber's "
            f"own process {same}, on the other {other}; {p.early} pushes before the "
            f"booking's response; {p.pushes:,} pushes received ({p.idle_pushes} before the "
            f"first booking); timed part {lv.timed_seconds:.1f} s, servers' CPU "
            f"{per_booking:.0f} ms per booking; client CPU {lv.cpu['client']:.2f} s "
            f"({lv.cpu['client'] / lv.timed_seconds:.0%} of one CPU); createBooking p50 "
            f"{statistics.median(lv.booking_ms):.0f} ms"
        )
        if lv.open_errors:
            lines.append(f"  subscribe failures: {lv.open_errors}")
        if lv.booking_errors:
            lines.append(f"  booking failures: {lv.booking_errors[:3]}")
        if p.missed:
            lines.append(
                f"  {p.missed} (subscriber, booking) pairs without a push within "
                f"{PUSH_TIMEOUT:.0f} s ({p.missed_subscribers} subscribers)"
            )
    return lines


def fmt_mib(values: Sequence[int]) -> str:
    return " + ".join(f"{v / 2**20:.1f}" for v in values)


async def delete_redis_keys(prefix: str) -> int:
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        return len(keys)
    finally:
        await redis.aclose()


async def versions(database_url: str) -> str:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        pg = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    redis = Redis.from_url(REDIS_URL)
    try:
        info = await redis.info("server")
    finally:
        await redis.aclose()
    return f"PostgreSQL {pg.split()[0]}, Redis {info.get('redis_version', '?')}"


# ---- the run --------------------------------------------------------------------------------


async def run(counts: Sequence[int], modes: Sequence[bool], profile: Path | None) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    began = time.perf_counter()
    limit = raise_open_files_limit()
    needed = max(counts) + 200
    if limit < needed:
        sys.exit(f"open-files limit {limit:,}: {needed:,} needed (raise the hard limit)")
    load = os.getloadavg()[0]
    print(
        f"Python {platform.python_version()}, uvicorn {uvicorn.__version__} ("
        + (
            "--ws realtime.uvicorn_ws:LeanWebSocketProtocol, its sansio protocol without "
            "the kept handshake; BENCH_WS=auto for uvicorn's own"
            if LEAN
            else "its `auto` WebSocket implementation"
        )
        + f"), websockets {websockets_version}; "
        f"{os.cpu_count()} CPUs shared by the client, the two server processes, PostgreSQL "
        f"and Redis; 1-minute load average before the run: {load:.2f}; open-files limit "
        f"{limit:,} (the servers inherit it)",
        flush=True,
    )
    prefix = f"bench-subscriptions-{uuid.uuid4()}:"
    levels: list[Level] = []
    async with scratch_database() as database_url:
        context = await versions(database_url)
        print(f"{context}; Redis prefix {prefix}", flush=True)
        # Seeding on a server of its own (any process would do: they share the database).
        env = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
        async with (
            running_server(database_url, env) as seeder,
            httpx.AsyncClient(base_url=seeder.base_url, timeout=60) as http,
        ):
            api = Api(http)
            started = time.perf_counter()
            business = await create_business(api, await api.sign_up("Owner"), first_monday())
            customer = await api.mutate(
                SIGN_UP,
                "signUp",
                {
                    "email": f"customer-{uuid.uuid4().hex[:10]}@example.com",
                    "password": "a long enough passphrase",
                    "name": "Customer",
                },
            )
            token: str = customer["accessToken"]
            print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
        slots = [business.slots(w) for w in range(len(business.windows))]
        try:
            for deflate in modes:
                for count in counts:
                    profile_here = profile if count == max(counts) else None
                    levels.append(
                        await run_level(
                            count,
                            deflate,
                            database_url,
                            prefix,
                            business,
                            slots,
                            token,
                            profile_here,
                        )
                    )
                profile = None  # one mode profiled
        finally:
            deleted = await delete_redis_keys(prefix)
            if deleted:
                print(f"deleted {deleted} Redis keys under {prefix}", flush=True)

    elapsed = time.perf_counter() - began
    print()
    print(
        f"`availabilityChanged` subscribers over two `uvicorn app:app` processes sharing "
        f"PostgreSQL and Redis; one machine, {os.cpu_count()} CPUs shared by the client, the "
        f"servers, PostgreSQL and Redis (1-minute load average: {load:.2f} before the run, "
        f"{os.getloadavg()[0]:.2f} after); {context}:"
    )
    print()
    print("\n".join(table(levels)))
    print()
    print(
        f"N subscribers, alternating between the two processes, anonymous, one "
        f"graphql-transport-ws connection and one subscription each, all with the same "
        f"document (`timeZone slots {{ start end remainingCapacity staff {{ id }} }}`) on "
        f"{WINDOWS} one-week windows of a business with {STAFF} staff (any staff member; "
        f"78 slots a week), opened {OPEN_CONCURRENCY} at a time from one asyncio client "
        f"process (the `websockets` library). Compression off: uvicorn with "
        f"`--ws-per-message-deflate false`, the client offering none; permessage-deflate: "
        f"uvicorn's default and a client offering it, as browsers do. Memory: RSS of the two "
        f"processes with N idle subscribers (every snapshot received, {SETTLE:.0f} s settled) "
        f"minus before (after a warm-up of one subscriber per window and process), over N; "
        f"fresh processes for each row. Pairs: {BOOKINGS} createBooking over HTTP, one every "
        f"{BOOKING_EVERY * 1000:.0f} ms, alternating between the processes, round robin over "
        f"the windows, times the subscribers of the booked window; delay: arrival of the "
        f"first push whose slots no longer offer the booked staff member at the booked start, "
        f"minus arrival of the booking's HTTP response, both in the client process; missed: "
        f"none within {PUSH_TIMEOUT:.0f} s. p99 aim: under 250 ms up to 1,000 subscribers, "
        f"under 1 s at 5,000. CPU: user + system seconds of the two servers, the bench "
        f"database's PostgreSQL backends, redis-server and the client process from the "
        f"first booking until the last push arrived."
    )
    print()
    print("\n".join(details(levels)))
    print()
    print(f"run time {elapsed:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--counts",
        default="100,1000,5000",
        help="subscriber counts, comma-separated (default: 100,1000,5000)",
    )
    parser.add_argument(
        "--deflate",
        default="off,on",
        help="WebSocket compression modes to run, 'off', 'on' or 'off,on' (default): off "
        "starts uvicorn with --ws-per-message-deflate false and a client offering none",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a directory: record both servers with py-spy (raw format) during the timed "
        "part of the largest count, first mode (`.venv/bin/pip install py-spy` first)",
    )
    args = parser.parse_args()
    try:
        counts = [int(c.replace("_", "")) for c in args.counts.split(",") if c.strip()]
    except ValueError:
        parser.error("--counts takes numbers, e.g. 100,1000,5000")
    if not counts or any(c < 1 for c in counts):
        parser.error("--counts takes positive numbers")
    names = [m.strip() for m in args.deflate.split(",") if m.strip()]
    if not names or any(m not in ("off", "on") for m in names):
        parser.error("--deflate takes off, on or off,on")
    modes = [m == "on" for m in names]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(counts, modes, args.profile))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted: the bench database was dropped and the servers stopped")


if __name__ == "__main__":
    main()
