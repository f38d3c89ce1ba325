"""Benchmark of `createBooking` over HTTP, against the real server.

    .venv/bin/python bench/booking.py

A database of its own (as bench/availability.py makes it) is created, migrated and
dropped at the end. Every business and customer is set up over the GraphQL API; the
only SQL is the final counts that verify the race and the bookings and payments stored.

Two server set-ups run one after the other on that database:
  * one `uvicorn app:app` process (in-process slot locks);
  * two `uvicorn app:app` processes with REDIS_URL and a REDIS_PREFIX unique to this
    run, the client alternating requests between them.

In each, with the offline payment provider (no STRIPE_SECRET_KEY), two measurements:
  1. Uncontended createBooking at 1, 8 and 32 concurrent clients, next to
     `{ __typename }` at the same concurrency on the same server(s), both driven by wrk
     (bench/loadgen.py: C, installed with apt-get when missing) for SECONDS each: every
     request books a slot nobody else asks for (its own staff member x day x start),
     with its own idempotency key, signed in as one of a pool of customers; the bodies
     and tokens are generated beforehand and the wrk script sends them in turn. With two
     processes, wrk's two threads each drive one of them. The same is then timed for a
     paid service (PRICE > 0) of a business of its own: the payment saga (the booking
     PENDING_PAYMENT with its payment row, then the provider's intent) in each request.
  2. The race: 1,000 createBooking attempts on 10 one-to-one slots (100 each), shuffled
     and fired with RACE_IN_FLIGHT requests in flight from many customers. Exactly 10
     must win (checked with plain SQL), every loser must be SLOT_UNAVAILABLE, no 5xx.
     Its client is one Python process: each concurrent user has its own
     httpx.AsyncClient with one keep-alive connection per server.
Then the same number of server processes again, configured for Stripe (STRIPE_SECRET_KEY,
STRIPE_API_BASE) against the tests' Stripe stand-in (tests/stripe_standin.py) run as a
process of its own (bench/stripe_standin.py, one for the whole run): `{ __typename }` and
paid createBooking at the same levels, the real `stripe` library making each intent over
loopback HTTP. `--paid` chooses the paid rows (offline, stripe, none), `--seconds` the
length of each timed run: `--processes 1 --paid offline,stripe` takes about 2 minutes,
the default (both set-ups, both providers) about 4.

Every answered paid booking must be PENDING_PAYMENT with an open payment of the right
provider and its client secret (wrk's marker); afterwards PostgreSQL must hold as many
bookings as were answered (plus at most those in flight when wrk stopped), one payment
row per paid booking, and (Stripe) no more intents made than payments.

The clients share the machine's CPUs with the server(s), PostgreSQL and the Stripe
stand-in, which the output states, with the CPU each of them used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `bench` is a package of the checkout
    sys.path.insert(0, str(ROOT))

from bench.availability import (  # noqa: E402
    ADD_STAFF,
    CREATE_ORG,
    CREATE_SERVICE,
    HEADERS,
    SET_WEEK,
    TYPENAME,
    Api,
    Server,
    database_key,
    request_body,
    rfc3339,
    running_server,
    scratch_database,
)
from bench.loadgen import Load, Request, ensure_wrk, wrk  # noqa: E402

ZONE = "Europe/Berlin"
BERLIN = ZoneInfo(ZONE)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SEED = 2026

# The uncontended pool: STAFF x DAYS x STARTS_PER_DAY distinct free slots.
STAFF = 40
DAYS = 60
OPEN, CLOSE = 8, 20  # every day, 08:00-20:00 local: 24 starts of 30 minutes
STARTS_PER_DAY = (CLOSE - OPEN) * 2
SERVICE = {
    "name": "Consultation",
    "durationMinutes": 30,
    "slotIntervalMinutes": 30,
    "maxAdvanceDays": 90,
    "capacity": 1,
}
WEEK = [
    {"weekday": day, "start": f"{OPEN:02d}:00", "end": f"{CLOSE:02d}:00"}
    for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
]
CUSTOMERS = 64  # the uncontended run uses the first POOL of them, the race all
POOL = 32
LEVELS = (1, 8, 32)
SECONDS = 5  # each timed wrk run
WARMUP_SECONDS = 1  # untimed wrk runs before each level: `{ __typename }`, then bookings
BODIES_PER_RUN = 4_000  # distinct slots a createBooking run may book: more than it can
AIM = 0.35  # the product's aim: createBooking req/s >= 35% of `{ __typename }`'s
# Every slot is booked at most once per server set-up (each set-up has its own business).
assert (BODIES_PER_RUN + BODIES_PER_RUN // 4) * len(LEVELS) <= STAFF * DAYS * STARTS_PER_DAY
MARKER_BOOKED = '"createBooking":{"booking":{"id"'
MARKER_TYPENAME = '"__typename":"Query"'
PRICE = 4500  # minor units (EUR 45.00): a price makes every booking of the service paid
# The Stripe set-up's settings (STRIPE_API_BASE: the stand-in's); every other set-up
# gets them empty, which counts as unset, so an inherited key cannot turn it to Stripe.
STRIPE_SETTINGS = {"STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": "whsec_bench"}
OFFLINE_SETTINGS = {name: "" for name in (*STRIPE_SETTINGS, "STRIPE_API_BASE")}
PAID_PROVIDERS = ("offline", "stripe")
# bench/stripe_standin.py's STATS_PATH (not imported: that imports the tests' modules).
STANDIN_STATS = "/bench/stats"

RACE_STAFF = 5  # 10 slots: 5 staff x 2 back-to-back starts
RACE_STARTS = ((10, 0), (10, 30))
RACE_ATTEMPTS_PER_SLOT = 100
RACE_IN_FLIGHT = 100
RACE_DAY_OFFSET = 3  # days from the first bookable day

CREATE_BOOKING = """
mutation($input: CreateBookingInput!) {
  createBooking(input: $input) {
    booking { id reference status start end price { amount currency } staff { id } }
    errors { code field message }
  }
}"""
# What an SPA asks of a paid booking: its status and the client secret for Stripe.js.
CREATE_PAID_BOOKING = """
mutation($input: CreateBookingInput!) {
  createBooking(input: $input) {
    booking {
      id status payment { status provider clientSecret }
      reference start end price { amount currency } staff { id }
    }
    errors { code field message }
  }
}"""
ACTIVE = ["PENDING_PAYMENT", "PENDING_CONFIRMATION", "CONFIRMED"]


@dataclass(frozen=True, slots=True)
class Kind:
    """What a createBooking run books: a free service, or a paid one through a provider."""

    name: str
    provider: str | None  # payments.provider of every booking made; None: free
    query: str
    marker: str  # in every good answer (wrk counts the others as bad)

    @property
    def paid(self) -> bool:
        return self.provider is not None


def paid_marker(provider: str, secret_prefix: str) -> str:
    """The answer of a paid booking whose intent was made (the fields in query order)."""
    return (
        '"status":"PENDING_PAYMENT","payment":{"status":"REQUIRES_PAYMENT",'
        f'"provider":"{provider}","clientSecret":"{secret_prefix}'
    )


FREE = Kind("free", None, CREATE_BOOKING, MARKER_BOOKED)
PAID_OFFLINE = Kind(
    "paid, offline", "offline", CREATE_PAID_BOOKING, paid_marker("offline", "offline_pi_")
)
PAID_STRIPE = Kind(
    "paid, Stripe stand-in", "stripe", CREATE_PAID_BOOKING, paid_marker("stripe", "pi_")
)


# ---- servers --------------------------------------------------------------------------------


def uvicorn_process(
    database_url: str, extra_env: dict[str, str]
) -> AbstractAsyncContextManager[Server]:
    """The availability bench's server, without an inherited REDIS_URL unless given."""
    return running_server(database_url, extra_env, without_redis="REDIS_URL" not in extra_env)


@dataclass(slots=True)
class Setup:
    label: str
    servers: list[Server]
    redis_prefix: str | None = None
    provider: str = "offline"  # the payment provider the servers are configured with


@asynccontextmanager
async def running_setup(
    database_url: str, processes: int, stripe_api: str | None = None
) -> AsyncIterator[Setup]:
    """The server(s), with the offline payment provider, or with Stripe at `stripe_api`."""
    payments = OFFLINE_SETTINGS
    if stripe_api is not None:
        payments = {**STRIPE_SETTINGS, "STRIPE_API_BASE": stripe_api}
    provider = "offline" if stripe_api is None else "stripe"
    async with AsyncExitStack() as stack:
        if processes == 1:
            server = await stack.enter_async_context(uvicorn_process(database_url, payments))
            yield Setup("1 process", [server], provider=provider)
            return
        prefix = f"bench-{uuid.uuid4()}:"
        env = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix, **payments}
        servers = [
            await stack.enter_async_context(uvicorn_process(database_url, env))
            for _ in range(processes)
        ]
        yield Setup(f"{processes} processes + Redis", servers, prefix, provider)


@dataclass(slots=True)
class StandIn:
    """The Stripe stand-in's process (bench/stripe_standin.py)."""

    base_url: str
    pid: int
    stats: dict[str, Any] = field(default_factory=dict)  # what it printed when stopped

    async def stats_now(self) -> dict[str, Any]:
        """What it has done so far: intents created, requests by endpoint and status."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            response = await http.get(STANDIN_STATS)
            response.raise_for_status()
            stats: dict[str, Any] = orjson.loads(response.content)
            return stats


def since(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """The intents the stand-in made, and its calls by endpoint, between two readings."""
    calls = {
        call: n - before["calls"].get(call, 0)
        for call, n in after["calls"].items()
        if n != before["calls"].get(call, 0)
    }
    return after["created_intents"] - before["created_intents"], calls


@asynccontextmanager
async def running_stripe_standin() -> AsyncIterator[StandIn]:
    argv = [sys.executable, "-m", "bench.stripe_standin"]
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        assert process.stdout is not None
        stand_in: StandIn | None = None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            if not line.startswith(b"READY "):
                log.seek(0)
                raise RuntimeError(
                    f"the Stripe stand-in did not start: {line!r}\n"
                    + log.read().decode(errors="replace")
                )
            stand_in = StandIn(line.decode().split()[1], process.pid)
            yield stand_in
        finally:
            if process.returncode is None:
                process.terminate()  # it prints its figures and exits
            try:
                out, _ = await asyncio.wait_for(process.communicate(), timeout=15)
            except TimeoutError:
                process.kill()
                out, _ = await process.communicate()
            for text in out.decode(errors="replace").splitlines():
                if text.startswith("STATS ") and stand_in is not None:
                    stand_in.stats = orjson.loads(text[len("STATS ") :])


class Clients:
    """`users` concurrent clients, each with one keep-alive connection per server (an
    httpx.AsyncClient limited to one connection); request i goes to server i mod n.

    One client per user rather than one shared client with `users` connections:
    httpcore scans its whole pool on every request, which at 32 connections costs the
    client process ~3.6 ms of CPU per request instead of ~0.9 ms, on the CPUs the
    server needs (see encode/httpx#3215)."""

    def __init__(self, servers: Sequence[Server], users: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.users = [
            [httpx.AsyncClient(base_url=s.base_url, timeout=120, limits=limits) for s in servers]
            for _ in range(users)
        ]

    async def post(self, user: int, i: int, body: bytes, headers: dict[str, str]) -> httpx.Response:
        http = self.users[user][i % len(self.users[user])]
        return await http.post("/graphql", content=body, headers=headers)

    async def aclose(self) -> None:
        for user in self.users:
            for http in user:
                await http.aclose()


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds (user + system) used by the server process(es), by PostgreSQL's
    backends serving the bench database, and by this client process."""

    server: float
    postgres: float
    client: float
    backends: frozenset[int] = frozenset()  # PostgreSQL backends alive at the reading
    # A difference of readings between which backends came or went: the CPU of a
    # backend that closed before the second reading is (partly) missing.
    postgres_partial: bool = False
    standin: float = 0.0  # the Stripe stand-in's process, when there is one

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            self.server - other.server,
            self.postgres - other.postgres,
            self.client - other.client,
            postgres_partial=self.backends != other.backends,
            standin=self.standin - other.standin,
        )

    def per_request(self, requests: int) -> Cpu:
        return Cpu(
            self.server * 1000 / requests,
            self.postgres * 1000 / requests,
            self.client * 1000 / requests,
            postgres_partial=self.postgres_partial,
            standin=self.standin * 1000 / requests,
        )


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class CpuMeter:
    def __init__(
        self, servers: Sequence[Server], database_url: str, standin: StandIn | None = None
    ) -> None:
        self.servers = [psutil.Process(s.pid) for s in servers]
        self.standin = psutil.Process(standin.pid) if standin is not None else None
        self.database = urlsplit(database_url).path.lstrip("/")
        self.me = psutil.Process()
        self.seen: dict[int, float] = {}  # backend pid -> CPU seconds at the last reading

    def _postgres(self) -> tuple[float, frozenset[int]]:
        """CPU of the backends ever seen connected to the bench database (at their last
        reading; a backend that appeared since the previous reading counts from zero),
        and the backends alive now."""
        alive: set[int] = set()
        for process in psutil.process_iter(["name", "cmdline"]):
            try:
                if process.info["name"] != "postgres":
                    continue
                if self.database not in " ".join(process.info["cmdline"] or ()):
                    continue
                self.seen[process.pid] = cpu_seconds(process)
                alive.add(process.pid)
            except psutil.Error:
                continue
        return sum(self.seen.values()), frozenset(alive)

    def read(self) -> Cpu:
        postgres, alive = self._postgres()
        server = sum(cpu_seconds(p) for p in self.servers)
        standin = cpu_seconds(self.standin) if self.standin is not None else 0.0
        return Cpu(server, postgres, cpu_seconds(self.me), alive, standin=standin)


# ---- seeding --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Business:
    service_id: str
    staff_ids: list[str]


async def create_business(api: Api, token: str, staff_count: int, price: int = 0) -> Business:
    slug = f"bench-{uuid.uuid4().hex[:10]}"
    org_input = {"name": "Bench Clinic", "slug": slug, "timeZone": ZONE, "currency": "EUR"}
    org = await api.mutate(CREATE_ORG, "createOrganization", org_input, token)
    org_id: str = org["organization"]["id"]
    service_input = {"organizationId": org_id, **SERVICE, "priceAmount": price}
    service = await api.mutate(CREATE_SERVICE, "createService", service_input, token)
    service_id: str = service["service"]["id"]

    async def add(i: int) -> str:
        member = {"organizationId": org_id, "name": f"Staff {i:02d}", "serviceIds": [service_id]}
        added = await api.mutate(ADD_STAFF, "addStaff", member, token)
        staff_id: str = added["staff"]["id"]
        await api.mutate(SET_WEEK, "setWeeklySchedule", {"staffId": staff_id, "hours": WEEK}, token)
        return staff_id

    staff_ids = [await add(i) for i in range(staff_count)]  # in order: stable names
    return Business(service_id, staff_ids)


async def sign_up_customers(api: Api, count: int) -> list[str]:
    """Access tokens of `count` new customers (a few at a time: argon2 is the cost)."""
    tokens: list[str] = []
    run = uuid.uuid4().hex[:8]
    for first in range(0, count, 8):
        batch = [
            api.sign_up(f"Customer {i}", f"bench-{run}-{i}@example.com")
            for i in range(first, min(first + 8, count))
        ]
        tokens.extend(await asyncio.gather(*batch))
    return tokens


def local_start(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN) + timedelta(minutes=minutes)


def booking_body(
    service_id: str, staff_id: str, start: datetime, query: str = CREATE_BOOKING
) -> bytes:
    return request_body(
        query,
        {
            "input": {
                "serviceId": service_id,
                "staffId": staff_id,
                "start": rfc3339(start),
                "idempotencyKey": uuid.uuid4().hex,
            }
        },
    )


def free_slot_bodies(
    business: Business, first_day: date, query: str = CREATE_BOOKING
) -> Iterator[bytes]:
    """One body per distinct slot of the pool, ordered so that consecutive requests
    name different staff members (then different days, then different starts)."""
    for i in range(STAFF * DAYS * STARTS_PER_DAY):
        staff, rest = i % STAFF, i // STAFF
        day, start = rest % DAYS, rest // DAYS
        when = local_start(first_day + timedelta(days=day), OPEN * 60 + 30 * start)
        yield booking_body(business.service_id, business.staff_ids[staff], when, query)


# ---- measuring ------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcomes:
    """What came back, request by request."""

    latencies: list[float] = field(default_factory=list)  # seconds
    booked: list[str] = field(default_factory=list)  # booking ids
    codes: Counter[str] = field(default_factory=Counter)  # payload error codes
    samples: dict[str, str] = field(default_factory=dict)  # one example per kind of failure
    top_level: int = 0  # answers with top-level GraphQL errors
    http_5xx: int = 0
    http_other: int = 0
    transport: int = 0  # no answer at all

    def unexpected(self, allowed: frozenset[str] = frozenset()) -> int:
        payload = sum(n for code, n in self.codes.items() if code not in allowed)
        return payload + self.top_level + self.http_5xx + self.http_other + self.transport

    def note(self, kind: str, detail: str) -> None:
        self.samples.setdefault(kind, detail[:600])


def record(outcomes: Outcomes, response: httpx.Response | BaseException, field_name: str) -> None:
    if isinstance(response, BaseException):
        outcomes.transport += 1
        outcomes.note(f"transport {type(response).__name__}", repr(response))
        return
    if response.status_code >= 500:
        outcomes.http_5xx += 1
        outcomes.note(f"HTTP {response.status_code}", response.text)
        return
    if response.status_code != 200:
        outcomes.http_other += 1
        outcomes.note(f"HTTP {response.status_code}", response.text)
        return
    answer: dict[str, Any] = orjson.loads(response.content)
    if answer.get("errors"):
        outcomes.top_level += 1
        codes = sorted({str(e.get("extensions", {}).get("code")) for e in answer["errors"]})
        outcomes.note(f"top-level {','.join(codes)}", response.text)
        return
    data = answer["data"][field_name]
    if field_name == "__typename":
        return
    if data["errors"]:
        for error in data["errors"]:
            outcomes.codes[error["code"]] += 1
            outcomes.note(error["code"], orjson.dumps(error).decode())
    else:
        outcomes.booked.append(data["booking"]["id"])


async def fire(
    clients: Clients,
    requests: Sequence[tuple[bytes, dict[str, str]]],
    concurrency: int,
    field_name: str,
) -> tuple[Outcomes, float]:
    """Every request, `concurrency` in flight (one per user); the outcomes and the wall
    time from the first request sent to the last response."""
    assert concurrency <= len(clients.users)
    outcomes = Outcomes()
    responses: list[httpx.Response | BaseException] = []
    queue = iter(enumerate(requests))

    async def worker(user: int) -> None:
        for i, (body, headers) in queue:  # shared: each request is taken once
            started = time.perf_counter()
            try:
                response: httpx.Response | BaseException = await clients.post(
                    user, i, body, headers
                )
            except httpx.HTTPError as error:
                response = error
            outcomes.latencies.append(time.perf_counter() - started)
            responses.append(response)

    started = time.perf_counter()
    await asyncio.gather(*(worker(user) for user in range(concurrency)))
    elapsed = time.perf_counter() - started
    for response in responses:  # parsed outside the timed part
        record(outcomes, response, field_name)
    return outcomes, elapsed


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed batch: throughput, latency and CPU per request."""

    requests: int
    seconds: float
    p50: float  # ms
    p95: float  # ms
    cpu: Cpu  # per request, in ms

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def p50_p95(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return statistics.median(latencies) * 1000, cuts[94] * 1000


async def timed(
    meter: CpuMeter,
    clients: Clients,
    requests: Sequence[tuple[bytes, dict[str, str]]],
    concurrency: int,
    field_name: str,
) -> tuple[Outcomes, Phase]:
    before = meter.read()
    outcomes, seconds = await fire(clients, requests, concurrency, field_name)
    used = meter.read() - before
    n = len(requests)
    return outcomes, Phase(n, seconds, *p50_p95(outcomes.latencies), used.per_request(n))


@dataclass(frozen=True, slots=True)
class Level:
    setup: str
    clients: int
    typename: Phase
    booking: Phase
    kind: Kind = FREE

    @property
    def ratio(self) -> float:
        return self.booking.rps / self.typename.rps


PLAIN = {**HEADERS}


class Profiler:
    """py-spy recording the first server process while the uncontended createBooking
    runs at the highest concurrency; off unless --profile names a file. py-spy is not a
    dependency: `.venv/bin/pip install py-spy` first."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, pid: int) -> None:
        if self.path is None:
            return
        py_spy = Path(sys.executable).with_name("py-spy")
        argv = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
        argv += ["--output", str(self.path), "--nonblocking"]
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except FileNotFoundError:
            print(f"no profile: {py_spy} is not installed", flush=True)
            self.path = None
            return
        await asyncio.sleep(0.5)  # attached before the load starts

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        _, err = await self.process.communicate()
        if self.process.returncode:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", flush=True)
        else:
            print(f"  profile written to {self.path}", flush=True)
        self.process = None
        self.path = None  # one profile per run


async def phase(
    meter: CpuMeter,
    urls: Sequence[str],
    requests: Sequence[Request],
    clients: int,
    marker: str,
    seconds: int,
) -> tuple[Load, Phase]:
    """One timed wrk run: its answers, and its throughput, latency and CPU per request
    (the client's being wrk's)."""
    before = meter.read()
    load = await wrk(urls, requests, connections=clients, seconds=seconds, marker=marker)
    used = meter.read() - before
    cpu = Cpu(
        used.server,
        used.postgres,
        load.client_cpu,
        postgres_partial=used.postgres_partial,
        standin=used.standin,
    )
    n = max(load.requests, 1)
    return load, Phase(load.requests, load.seconds, load.p50_ms, load.p95_ms, cpu.per_request(n))


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run whose answers are to be checked; `kind` None for `{ __typename }`."""

    name: str
    kind: Kind | None
    load: Load


async def uncontended(
    setup: Setup,
    meter: CpuMeter,
    kinds: Sequence[tuple[Kind, Iterator[bytes]]],
    tokens: Sequence[str],
    profiler: Profiler,
    seconds: int,
) -> tuple[list[Level], list[Run]]:
    """Every level: `{ __typename }`, then createBooking of each kind (its bodies drawn
    from its iterator), timed; the levels, and every wrk run."""
    pool = tokens[:POOL]
    urls = [s.base_url for s in setup.servers]
    typename = [Request(request_body(TYPENAME))] * len(urls)  # one per wrk thread
    levels: list[Level] = []
    runs: list[Run] = []
    counter = 0

    def bookings(bodies: Iterator[bytes], count: int) -> list[Request]:
        nonlocal counter
        batch = [Request(next(bodies), pool[(counter + i) % len(pool)]) for i in range(count)]
        counter += count
        return batch

    for concurrency in LEVELS:
        # Untimed: opens the connections and wakes the server up; the bookings grow each
        # server's PostgreSQL pool to this concurrency and prepare the statements on
        # every connection, as a server that has been up a while. Each kind is warmed
        # up by itself: a paid booking runs statements a free one does not.
        await wrk(
            urls, typename, connections=concurrency, seconds=WARMUP_SECONDS, marker=MARKER_TYPENAME
        )
        plain_phase: Phase | None = None
        measured: list[Level] = []
        for n, (kind, bodies) in enumerate(kinds):
            warmed = await wrk(
                urls,
                bookings(bodies, BODIES_PER_RUN // 4),
                connections=concurrency,
                seconds=WARMUP_SECONDS,
                marker=kind.marker,
            )
            runs.append(
                Run(f"{concurrency} clients, warm-up createBooking ({kind.name})", kind, warmed)
            )
            if plain_phase is None:
                plain, plain_phase = await phase(
                    meter, urls, typename, concurrency, MARKER_TYPENAME, seconds
                )
                runs.append(Run(f"{concurrency} clients, `{{ __typename }}`", None, plain))
            profile = concurrency == max(LEVELS) and n == 0
            if profile:
                await profiler.start(setup.servers[0].pid)
            booked, booking_phase = await phase(
                meter, urls, bookings(bodies, BODIES_PER_RUN), concurrency, kind.marker, seconds
            )
            if profile:
                await profiler.stop()
            runs.append(Run(f"{concurrency} clients, createBooking ({kind.name})", kind, booked))
            measured.append(Level(setup.label, concurrency, plain_phase, booking_phase, kind))
        levels += measured
        rates = ", ".join(
            f"{lv.kind.name} {lv.booking.rps:,.0f} req/s ({lv.ratio:.0%})" for lv in measured
        )
        print(
            f"  {setup.label} ({setup.provider}), {concurrency} clients: __typename "
            f"{measured[0].typename.rps:,.0f} req/s, createBooking {rates}",
            flush=True,
        )
    return levels, runs


def wrk_problems(label: str, runs: Sequence[Run]) -> list[str]:
    notes = []
    for run in runs:
        problems = run.load.problems()
        if problems:
            notes.append(f"{label}, {run.name}: {problems}")
        if run.load.wrapped and run.kind is not None:
            notes.append(f"{label}, {run.name}: ran out of free slots (raise BODIES_PER_RUN)")
    return notes


@dataclass(slots=True)
class Stored:
    """What PostgreSQL holds of one kind's bookings in one set-up, against what wrk saw."""

    setup: str
    kind: Kind
    answered: int  # answers with a booking, in wrk's runs (warm-ups included)
    in_flight: int  # at most this many more: a request in flight on each connection at a stop
    bookings: int  # of the kind's service, any status
    active: int
    pending_payment: int
    payments: int  # payment rows of those bookings
    with_intent: int  # open, of the kind's provider, with the provider's intent
    intents_made: int | None = None  # by the Stripe stand-in (replays make none)

    def problems(self) -> list[str]:
        label = f"{self.setup}, {self.kind.name}"
        wrong = []
        if not self.answered <= self.active <= self.answered + self.in_flight:
            wrong.append(
                f"{self.answered} bookings answered (+ at most {self.in_flight} in flight "
                f"when wrk stopped) but {self.active} active in the database"
            )
        if self.bookings != self.active:
            wrong.append(f"{self.bookings - self.active} bookings no longer active")
        if not self.kind.paid:
            if self.payments:
                wrong.append(f"{self.payments} payments for free bookings")
            return [f"{label}: {w}" for w in wrong]
        if self.pending_payment != self.active:
            wrong.append(f"{self.active - self.pending_payment} active but not PENDING_PAYMENT")
        if self.payments != self.bookings:
            wrong.append(f"{self.payments} payment rows for {self.bookings} paid bookings")
        # A request cancelled by wrk's stop between its commit and its intent leaves a
        # payment without one (the reconciliation makes it after 20 s).
        if not self.answered <= self.with_intent <= self.payments:
            wrong.append(
                f"{self.with_intent} open payments with an intent, for {self.answered} "
                f"answered and {self.payments} payment rows"
            )
        if self.intents_made is not None and not (
            self.with_intent <= self.intents_made <= self.payments
        ):
            wrong.append(
                f"the stand-in made {self.intents_made} intents for {self.payments} payments "
                f"({self.with_intent} attached)"
            )
        return [f"{label}: {w}" for w in wrong]


async def stored(
    database_url: str, setup: Setup, kind: Kind, business: Business, runs: Sequence[Run]
) -> Stored:
    """The kind's bookings and payments counted in PostgreSQL, beside wrk's answers."""
    mine = [run.load for run in runs if run.kind is kind]
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        row = await conn.fetchrow(
            """
            SELECT count(*) AS bookings,
                   count(*) FILTER (WHERE b.status = ANY($2::text[])) AS active,
                   count(*) FILTER (WHERE b.status = 'PENDING_PAYMENT') AS pending,
                   count(p.id) AS payments,
                   count(p.id) FILTER (
                       WHERE p.status = 'REQUIRES_PAYMENT' AND p.intent_id IS NOT NULL
                         AND p.provider = $3
                   ) AS with_intent
            FROM bookings b LEFT JOIN payments p ON p.booking_id = b.id
            WHERE b.service_id = $1
            """,
            database_key(business.service_id),
            ACTIVE,
            kind.provider or "",
        )
    finally:
        await conn.close()
    assert row is not None
    return Stored(
        setup.label,
        kind,
        answered=sum(load.booked for load in mine),
        in_flight=sum(load.connections for load in mine),
        bookings=int(row["bookings"]),
        active=int(row["active"]),
        pending_payment=int(row["pending"]),
        payments=int(row["payments"]),
        with_intent=int(row["with_intent"]),
    )


@dataclass(slots=True)
class Race:
    setup: str
    attempts: int
    phase: Phase  # seconds: first request sent to last response
    winners: int  # answered with a booking
    winners_sql: int  # active bookings on the race's slots, counted with SQL
    per_slot_sql: list[int]
    claims_sql: int
    outcomes: Outcomes

    @property
    def ok(self) -> bool:
        return (
            self.winners == 10
            and self.winners_sql == 10
            and all(n == 1 for n in self.per_slot_sql)
            and self.outcomes.unexpected(frozenset({"SLOT_UNAVAILABLE"})) == 0
        )


async def race(
    setup: Setup,
    meter: CpuMeter,
    database_url: str,
    business: Business,
    day: date,
    tokens: Sequence[str],
) -> Race:
    slots = [
        (staff_id, local_start(day, hour * 60 + minute))
        for staff_id in business.staff_ids
        for hour, minute in RACE_STARTS
    ]
    assert len(slots) == 10
    auth = [{**PLAIN, "authorization": f"Bearer {t}"} for t in tokens]
    attempts = [
        (booking_body(business.service_id, staff_id, start), auth[(i * 7 + n) % len(auth)])
        for i, (staff_id, start) in enumerate(slots)
        for n in range(RACE_ATTEMPTS_PER_SLOT)
    ]
    random.Random(SEED).shuffle(attempts)
    clients = Clients(setup.servers, RACE_IN_FLIGHT)
    try:
        typename = request_body(TYPENAME)
        await fire(
            clients, [(typename, PLAIN)] * (2 * RACE_IN_FLIGHT), RACE_IN_FLIGHT, "__typename"
        )
        outcomes, phase = await timed(meter, clients, attempts, RACE_IN_FLIGHT, "createBooking")
    finally:
        await clients.aclose()

    staff = [database_key(s) for s in business.staff_ids]
    starts = [start for _, start in slots]
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await conn.fetch(
            """
            SELECT staff_id, start_at, count(*) AS n FROM bookings
            WHERE status = ANY($1::text[]) AND staff_id = ANY($2::uuid[])
              AND start_at = ANY($3::timestamptz[])
            GROUP BY staff_id, start_at
            """,
            ACTIVE,
            staff,
            starts,
        )
        claims = await conn.fetchval(
            "SELECT count(*) FROM claims WHERE resource_id = ANY($1::uuid[])"
            " AND booking_id IS NOT NULL",
            staff,
        )
    finally:
        await conn.close()
    counted = {(r["staff_id"], r["start_at"]): int(r["n"]) for r in rows}
    per_slot = [counted.get((database_key(s), t), 0) for s, t in slots]
    return Race(
        setup.label,
        len(attempts),
        phase,
        len(outcomes.booked),
        sum(counted.values()),
        per_slot,
        int(claims),
        outcomes,
    )


# ---- report ---------------------------------------------------------------------------------


def cpu_cell(cpu: Cpu, postgres: bool = True) -> str:
    client = f"{cpu.client:.2f}" if cpu.client < 0.1 else f"{cpu.client:.1f}"  # wrk's: small
    if not postgres:
        return f"{cpu.server:.1f} / {client}"
    at_least = ">=" if cpu.postgres_partial else ""
    return f"{cpu.server:.1f} / {at_least}{cpu.postgres:.1f} / {client}"


def throughput_table(levels: Sequence[Level]) -> list[str]:
    lines = [
        "| server | clients | `{ __typename }` req/s | p50 ms | p95 ms "
        "| createBooking req/s | p50 ms | p95 ms | ratio | aim >= 35% "
        "| CPU ms/req `{ __typename }` (server / wrk) "
        "| CPU ms/req createBooking (server / PG / wrk) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for lv in levels:
        plain, booking = lv.typename, lv.booking
        verdict = "meets" if lv.ratio >= AIM else "misses"
        lines.append(
            f"| {lv.setup} | {lv.clients} | {plain.rps:,.0f} | {plain.p50:.1f} | {plain.p95:.1f} "
            f"| {booking.rps:,.0f} | {booking.p50:.1f} | {booking.p95:.1f} | {lv.ratio:.0%} "
            f"| {verdict} | {cpu_cell(plain.cpu, postgres=False)} | {cpu_cell(booking.cpu)} |"
        )
    return lines


def paid_cpu_cell(cpu: Cpu, standin: bool) -> str:
    client = f"{cpu.client:.2f}" if cpu.client < 0.1 else f"{cpu.client:.1f}"
    at_least = ">=" if cpu.postgres_partial else ""
    helper = f"{cpu.standin:.1f}" if standin else "-"
    return f"{cpu.server:.1f} / {at_least}{cpu.postgres:.1f} / {helper} / {client}"


def paid_table(levels: Sequence[Level]) -> list[str]:
    """Free and paid side by side, per set-up and concurrency; each ratio against the
    `{ __typename }` of the same server(s) at the same level."""
    lines = [
        "| server | clients | booking | `{ __typename }` req/s | createBooking req/s "
        "| p50 ms | p95 ms | ratio | req/s vs free "
        "| CPU ms/req (server / PG / stand-in / wrk) | server + PG CPU ms vs free |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    found = {(lv.setup, lv.clients, lv.kind.name): lv for lv in levels}
    setups = list(dict.fromkeys(lv.setup for lv in levels))
    for setup in setups:
        for clients in LEVELS:
            free = found.get((setup, clients, FREE.name))
            for kind in (FREE, PAID_OFFLINE, PAID_STRIPE):
                lv = found.get((setup, clients, kind.name))
                if lv is None:
                    continue
                booking = lv.booking
                versus, extra = "-", "-"
                if free is not None and kind.paid:
                    versus = f"{booking.rps / free.booking.rps:.0%}"
                    more = booking.cpu.server + booking.cpu.postgres
                    more -= free.booking.cpu.server + free.booking.cpu.postgres
                    extra = f"{more:+.1f}"
                lines.append(
                    f"| {setup} | {clients} | {kind.name} | {lv.typename.rps:,.0f} "
                    f"| {booking.rps:,.0f} | {booking.p50:.1f} | {booking.p95:.1f} "
                    f"| {lv.ratio:.0%} | {versus} "
                    f"| {paid_cpu_cell(booking.cpu, kind is PAID_STRIPE)} | {extra} |"
                )
    return lines


def stored_table(counts: Sequence[Stored]) -> list[str]:
    lines = [
        "| server | booking | answered (wrk) | in flight at stops | bookings (SQL) "
        "| PENDING_PAYMENT | payments | open with intent | intents made (stand-in) | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in counts:
        made = "-" if c.intents_made is None else f"{c.intents_made:,}"
        verdict = "FAILED" if c.problems() else "ok"
        lines.append(
            f"| {c.setup} | {c.kind.name} | {c.answered:,} | {c.in_flight} | {c.bookings:,} "
            f"| {c.pending_payment:,} | {c.payments:,} | {c.with_intent:,} | {made} "
            f"| {verdict} |"
        )
    return lines


def race_table(races: Sequence[Race]) -> list[str]:
    lines = [
        "| server | attempts | in flight | settle s | attempts/s | p50 ms | p95 ms "
        "| winners (answers) | winners (SQL) | SLOT_UNAVAILABLE | other errors | HTTP 5xx "
        "| CPU ms/attempt (server / PG / client) | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in races:
        other = r.outcomes.unexpected(frozenset({"SLOT_UNAVAILABLE"})) - r.outcomes.http_5xx
        lines.append(
            f"| {r.setup} | {r.attempts:,} | {RACE_IN_FLIGHT} | {r.phase.seconds:.2f} "
            f"| {r.phase.rps:,.0f} | {r.phase.p50:.0f} | {r.phase.p95:.0f} | {r.winners} "
            f"| {r.winners_sql} | {r.outcomes.codes['SLOT_UNAVAILABLE']} | {other} "
            f"| {r.outcomes.http_5xx} | {cpu_cell(r.phase.cpu)} | {'ok' if r.ok else 'FAILED'} |"
        )
    return lines


def failures(label: str, outcomes: Outcomes, allowed: frozenset[str]) -> list[str]:
    if outcomes.unexpected(allowed) == 0:
        return []
    counts = {code: n for code, n in outcomes.codes.items() if code not in allowed}
    lines = [
        f"{label}: {outcomes.unexpected(allowed)} unexpected answers: payload codes {counts}, "
        f"top-level {outcomes.top_level}, HTTP 5xx {outcomes.http_5xx}, other HTTP "
        f"{outcomes.http_other}, no answer {outcomes.transport}"
    ]
    lines += [f"  e.g. {kind}: {detail}" for kind, detail in outcomes.samples.items()]
    return lines


# ---- the run --------------------------------------------------------------------------------


# One WARNING per e-mail written to a file instead of sent: counted, not shown.
MAIL_WRITTEN = "not sent (no SMTP): written to"


def server_logs(setup: Setup) -> list[str]:
    logs = []
    for server in setup.servers:
        lines = server.log.strip().splitlines()
        written = sum(MAIL_WRITTEN in line for line in lines)
        lines = [line for line in lines if MAIL_WRITTEN not in line]
        if written:
            lines.append(f"({written} e-mails written to MAIL_DIR, as without SMTP_URL)")
        if lines:
            tail = "\n".join(lines[-20:])
            logs.append(f"{setup.label} ({setup.provider}), pid {server.pid}:\n{tail}")
    return logs


async def run(
    processes: Sequence[int], paid: Sequence[str], seconds: int, profile: Path | None
) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    load = os.getloadavg()[0]
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs shared by the clients (wrk, and Python for the race), the "
        "server process(es), PostgreSQL and the Stripe stand-in; "
        f"1-minute load average before the run: {load:.2f}",
        flush=True,
    )
    first_day = datetime.now(UTC).date() + timedelta(days=2)
    levels: list[Level] = []
    races: list[Race] = []
    counts: list[Stored] = []
    notes: list[str] = []
    logs: list[str] = []
    profiler = Profiler(profile)
    stand_in: StandIn | None = None
    async with scratch_database() as database_url, AsyncExitStack() as helpers:
        for count in processes:
            async with running_setup(database_url, count) as setup:
                pids = ", ".join(str(s.pid) for s in setup.servers)
                print(f"{setup.label} (pid {pids}); Redis prefix {setup.redis_prefix}", flush=True)
                seeding = httpx.AsyncClient(base_url=setup.servers[0].base_url, timeout=120)
                async with seeding:
                    api = Api(seeding)
                    started = time.perf_counter()
                    token = await api.sign_up("Owner")
                    pool = await create_business(api, token, STAFF)
                    arena = await create_business(api, token, RACE_STAFF)
                    customers = await sign_up_customers(api, CUSTOMERS)
                    kinds = [(FREE, pool)]
                    if "offline" in paid:
                        kinds.append(
                            (PAID_OFFLINE, await create_business(api, token, STAFF, PRICE))
                        )
                    print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)

                meter = CpuMeter(setup.servers, database_url)
                measured, runs = await uncontended(
                    setup,
                    meter,
                    [(kind, free_slot_bodies(b, first_day, kind.query)) for kind, b in kinds],
                    customers,
                    profiler,
                    seconds,
                )
                levels += measured
                notes += wrk_problems(setup.label, runs)
                # wrk stops with a request in flight on each connection: the server may
                # book those without their answers being counted.
                for kind, business in kinds:
                    counts.append(await stored(database_url, setup, kind, business, runs))

                result = await race(
                    setup,
                    meter,
                    database_url,
                    arena,
                    first_day + timedelta(days=RACE_DAY_OFFSET),
                    customers,
                )
                races.append(result)
                print(
                    f"  race settled in {result.phase.seconds:.2f} s: {result.winners} winners",
                    flush=True,
                )
                notes += failures(
                    f"{setup.label}, race", result.outcomes, frozenset({"SLOT_UNAVAILABLE"})
                )
                if result.claims_sql != 10:
                    notes.append(f"{setup.label}, race: {result.claims_sql} claims, not 10")
            logs += server_logs(setup)
            if "stripe" not in paid:
                continue

            if stand_in is None:
                # One stand-in for the whole run, as there is one Stripe: the payments an
                # earlier set-up left open are asked about by the next one's
                # reconciliation, which a stand-in of its own would answer with 404.
                stand_in = await helpers.enter_async_context(running_stripe_standin())
            before = await stand_in.stats_now()
            # The same number of processes again, configured for Stripe (a process reads
            # its provider once, at start-up); the offline ones are stopped first so that
            # they take none of the CPUs. The owner's and customers' tokens stay valid:
            # the signing key is the database's.
            async with running_setup(database_url, count, stand_in.base_url) as setup:
                pids = ", ".join(str(s.pid) for s in setup.servers)
                print(
                    f"{setup.label}, Stripe stand-in at {stand_in.base_url} (pid {pids}; "
                    f"stand-in pid {stand_in.pid}); Redis prefix {setup.redis_prefix}",
                    flush=True,
                )
                async with httpx.AsyncClient(
                    base_url=setup.servers[0].base_url, timeout=120
                ) as seeding:
                    business = await create_business(Api(seeding), token, STAFF, PRICE)
                meter = CpuMeter(setup.servers, database_url, stand_in)
                measured, runs = await uncontended(
                    setup,
                    meter,
                    [(PAID_STRIPE, free_slot_bodies(business, first_day, PAID_STRIPE.query))],
                    customers,
                    profiler,
                    seconds,
                )
                levels += measured
                notes += wrk_problems(f"{setup.label} (Stripe)", runs)
                counted = await stored(database_url, setup, PAID_STRIPE, business, runs)
                made, calls = since(before, await stand_in.stats_now())
            logs += server_logs(setup)
            counted.intents_made = made
            counts.append(counted)
            print(f"  Stripe stand-in meanwhile: {made} intents made; calls {calls}", flush=True)

    for c in counts:
        notes += c.problems()
    print()
    print(
        f"Uncontended `createBooking` vs `{{ __typename }}`: one machine, {os.cpu_count()} CPUs "
        "shared by wrk, the server process(es), PostgreSQL and Redis "
        f"(1-minute load average: {load:.2f} before the run, {os.getloadavg()[0]:.2f} after):"
    )
    print()
    print("\n".join(throughput_table([lv for lv in levels if lv.kind is FREE])))
    print()
    print(
        f"Each level: wrk ({ensure_wrk()}) for {seconds} s of `{{ __typename }}` then "
        f"{seconds} s of createBooking, after {WARMUP_SECONDS} s of each untimed (which "
        "grows the PostgreSQL pool to that concurrency); N clients are N keep-alive "
        "connections, each with one request in flight; with two server processes wrk runs "
        "two threads, each driving one process with half the connections (at 1 client, "
        "one thread: the first process only). "
        "Every booking is signed in (a pool of "
        f"{POOL} customers), has its own idempotency key and takes a slot nobody else asks "
        f"for: {STAFF} staff x {DAYS} days x {STARTS_PER_DAY} starts (30-minute one-to-one "
        "service, 30-minute grid), consecutive requests on different staff members. "
        "Ratio: createBooking req/s / `{ __typename }` req/s at the same concurrency. "
        "CPU ms/req: CPU time (user + system) used during the batch by the server "
        "process(es), by the PostgreSQL backends of the bench database and by wrk, "
        "divided by the requests; `>=` marks a batch during which the server "
        "opened or closed PostgreSQL connections (its pool growing), whose backends' "
        "CPU is partly missed."
    )
    if paid:
        print()
        print("Free vs paid createBooking:")
        print()
        print("\n".join(paid_table(levels)))
        print()
        print(
            f"Paid: a service priced {PRICE / 100:.2f} EUR in a business of its own (the same "
            f"{STAFF} staff x {DAYS} days x {STARTS_PER_DAY} starts), each level right after "
            f"the free one, {WARMUP_SECONDS} s untimed then {seconds} s timed; the answer asks "
            "for `payment { status provider clientSecret }` as an SPA does, and wrk counts an "
            "answer good only if it is PENDING_PAYMENT with an open payment of that provider "
            "and its client secret. Offline: the servers above (no STRIPE_SECRET_KEY). Stripe "
            "stand-in: as many server processes again, configured for Stripe, the `stripe` "
            "library calling tests/stripe_standin.py served by uvicorn in a process of its "
            "own on loopback (its CPU: the stand-in column), `{ __typename }` measured again "
            "on them. Ratio: against the `{ __typename }` of the same server(s) at that "
            "level; req/s vs free: against the free row of the same level and set-up; "
            "server + PG CPU ms vs free: what the saga adds per booking."
        )
    print()
    print("Bookings and payments in PostgreSQL after the runs:")
    print()
    print("\n".join(stored_table(counts)))
    print()
    print(
        "Answered: answers with a booking in all of that kind's wrk runs (warm-ups "
        "included); wrk stops with a request in flight on each connection, which the "
        "server may still book. Bookings (SQL): of the kind's service, any status; "
        "payments: rows of those bookings; open with intent: REQUIRES_PAYMENT, of the "
        "kind's provider, with the provider's intent attached; intents made: as counted "
        "by the stand-in."
    )
    if stand_in is not None:
        print(f"\nThe Stripe stand-in over the whole run: {stand_in.stats or 'no figures'}")
    print()
    print("The race:")
    print()
    print("\n".join(race_table(races)))
    print()
    print(
        f"{RACE_ATTEMPTS_PER_SLOT * 10:,} createBooking attempts on 10 one-to-one slots "
        f"({RACE_STAFF} staff x 2 back-to-back starts, {RACE_ATTEMPTS_PER_SLOT} attempts "
        f"each), shuffled, {RACE_IN_FLIGHT} in flight, from {CUSTOMERS} signed-in customers, "
        "each attempt with its own idempotency key. Settle: first request sent to last "
        "response. Winners (SQL): active bookings on those slots counted in PostgreSQL; "
        "each slot must have exactly one."
    )
    if notes:
        print("\nUnexpected:")
        print("\n".join(notes))
    if logs:
        print("\nserver logs (warnings and errors):")
        print("\n\n".join(logs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--processes",
        default="1,2",
        help="server set-ups to run, comma-separated process counts (default: 1,2)",
    )
    parser.add_argument(
        "--paid",
        default=",".join(PAID_PROVIDERS),
        help="paid createBooking rows beside the free ones, comma-separated providers: "
        f"offline, stripe (the stand-in), or none (default: {','.join(PAID_PROVIDERS)})",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=SECONDS,
        help=f"each timed wrk run, in whole seconds (default: {SECONDS})",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record the first server with py-spy (raw format) into this file during "
        f"uncontended createBooking at {max(LEVELS)} clients",
    )
    args = parser.parse_args()
    processes = [int(p) for p in args.processes.split(",") if p.strip()]
    if not processes or any(p not in (1, 2) for p in processes):
        parser.error("--processes takes 1, 2 or 1,2")
    paid = [p.strip() for p in args.paid.split(",") if p.strip() and p.strip() != "none"]
    if any(p not in PAID_PROVIDERS for p in paid):
        parser.error("--paid takes offline, stripe, offline,stripe or none")
    if args.seconds < 1:
        parser.error("--seconds takes a whole number of seconds, at least 1")
    try:
        asyncio.run(run(processes, paid, args.seconds, args.profile))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted: the bench database was dropped and the servers stopped")


if __name__ == "__main__":
    main()
