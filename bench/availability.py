"""Benchmark of the `availability` query over HTTP, against the real server.

    .venv/bin/python bench/availability.py      (or: make bench)

A database of its own on BENCH_DATABASE_URL's server (default: the local one) is
created, migrated and dropped at the end; the server is `uvicorn app:app`, one
process, started as a subprocess. Every business is set up over the GraphQL API, as an
SPA would; only the 2,000 time-off entries of case (c) are inserted with SQL.

The load comes from wrk (bench/loadgen.py: C, installed with apt-get when missing), so
that the client takes little of the CPU the server and PostgreSQL need: one connection
for latency, CONCURRENCY for req/s, each for a few seconds, `{ __typename }` measured
the same way in the same run for the ratios. wrk checks every answer (a 200, the
field, no error); the slot count is checked on the first and the last window of each
run outside the timed part.

Every measured availability request asks for a window never asked before: the window
of request i starts i seconds after the run's base (local midnight of a Monday), so a
cache keyed on the window cannot answer it. The shift stays below 09:00 local time,
so every answer of a case holds the same slots. The warm rows then ask for one window
again and again: the server keeps its answer until a change touches it
(domain/availability/live.py), and nothing changes during the bench. The herd row:
HERD clients ask for one window nobody asked before, all at once, and keep asking;
the server should compute it once and serve the rest warm within a second.

The floor is graphql-core executing the same query over plain dicts that produce
the very same answer: what GraphQL execution in Python costs at the least.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import os
import platform
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import graphql
import httpx
import orjson
from alembic import command
from alembic.config import Config
from graphql import build_schema, execute_sync, parse, validate

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `bench` is a package of the checkout
    sys.path.insert(0, str(ROOT))

from bench.loadgen import Load, Request, ensure_wrk, wrk  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ZONE = "Europe/Berlin"
BERLIN = ZoneInfo(ZONE)
CONCURRENCY = 4
FLOOR_RUNS = 30
SECONDS = 5  # each wrk run: one connection (latency), then CONCURRENCY (req/s)
WARMUP_SECONDS = 2  # `{ __typename }`, untimed, before anything is measured
# Window shifts (seconds) stay below this: before the first working hour.
MAX_SHIFT_SECONDS = 9 * 3600
WINDOWS_PER_RUN = 16_000  # fresh windows a run may send: more than it can in SECONDS
CHECK_WINDOWS = 100  # shifts 0..99: the untimed warm-up and checks of each case
HERD = 16  # clients asking for one never-asked window at once
HERD_SECONDS = (1, 3)  # the first second, then the next seconds
HERD_AIM = 0.8  # after the first second: this share of the warm req/s (HERD clients)
SEED = 2026

AVAILABILITY = """
query Availability($service: ID!, $start: DateTime!, $end: DateTime!) {
  availability(serviceId: $service, start: $start, end: $end) {
    slots { start end remainingCapacity staff { id } }
  }
}"""
TYPENAME = "{ __typename }"

SIGN_UP = """
mutation($input: SignUpInput!) {
  signUp(input: $input) { accessToken errors { code field message } }
}"""
CREATE_ORG = """
mutation($input: CreateOrganizationInput!) {
  createOrganization(input: $input) { organization { id } errors { code field message } }
}"""
CREATE_SERVICE = """
mutation($input: CreateServiceInput!) {
  createService(input: $input) { service { id } errors { code field message } }
}"""
ADD_STAFF = """
mutation($input: AddStaffInput!) {
  addStaff(input: $input) { staff { id } errors { code field message } }
}"""
SET_WEEK = """
mutation($input: SetWeeklyScheduleInput!) {
  setWeeklySchedule(input: $input) { staff { id } errors { code field message } }
}"""

# Mon-Fri 09:00-12:30 and 13:30-17:00, Saturday mornings.
WEEK = [
    *(
        {"weekday": day, "start": start, "end": end}
        for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY")
        for start, end in (("09:00", "12:30"), ("13:30", "17:00"))
    ),
    {"weekday": "SATURDAY", "start": "09:00", "end": "13:00"},
]
SERVICE = {
    "name": "Consultation",
    "durationMinutes": 30,
    "slotIntervalMinutes": 15,
    "maxAdvanceDays": 90,
}


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    staff: int
    days: int
    time_off: int
    warmup: int  # fresh windows asked one by one (checked) before the timed runs

    @property
    def label(self) -> str:
        days = "1 day" if self.days == 1 else f"{self.days} days"
        text = f"({self.key}) {self.staff} staff, {days}"
        return f"{text}, {self.time_off:,} time off" if self.time_off else text


CASES = (
    Case("a", staff=1, days=1, time_off=0, warmup=20),
    Case("b", staff=5, days=7, time_off=0, warmup=20),
    Case("c", staff=20, days=31, time_off=2000, warmup=5),
)
WARM_AIM = 10.0  # the same window again: latency within 10x of `{ __typename }`
# Shift ranges (seconds), each window asked in one place only.
LATENCY_SHIFTS = range(CHECK_WINDOWS, CHECK_WINDOWS + WINDOWS_PER_RUN)
THROUGHPUT_SHIFTS = range(LATENCY_SHIFTS.stop, LATENCY_SHIFTS.stop + WINDOWS_PER_RUN)
HERD_SHIFT = THROUGHPUT_SHIFTS.stop + 100
FLOOR_SHIFT = HERD_SHIFT + 100
assert FLOOR_SHIFT < MAX_SHIFT_SECONDS


@dataclass(frozen=True, slots=True)
class Business:
    org_id: str
    service_id: str
    staff_ids: list[str]


@dataclass(slots=True)
class Measured:
    name: str
    latency: Load  # one connection
    throughput: Load  # CONCURRENCY connections
    slots: int = 0
    response_bytes: int = 0

    @property
    def median_ms(self) -> float:
        return self.latency.p50_ms

    @property
    def p95_ms(self) -> float:
        return self.latency.p95_ms

    @property
    def rps(self) -> float:
        return self.throughput.rps


@dataclass(frozen=True, slots=True)
class Herd:
    warm: Load  # HERD clients on a window kept already, for HERD_SECONDS[1]: the aim
    first: Load  # HERD_SECONDS[0] on a window nobody asked before
    then: Load  # the HERD_SECONDS[1] after it
    slots: int


# ---- database -------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def migrate(url: str) -> None:
    """Alembic to head, as tests/conftest.py does (its env.py imports the app's modules)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A uniquely named, migrated database, dropped afterwards whatever happens."""
    name = f"booking_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = with_database(ADMIN_URL, name)
            await asyncio.to_thread(migrate, url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# ---- server ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    base_url: str
    pid: int
    log_file: IO[bytes]
    log: str = ""  # what it wrote, once stopped

    def log_text(self) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running_server(
    database_url: str,
    extra_env: dict[str, str] | None = None,
    *,
    without_redis: bool = False,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[Server]:
    """`uvicorn app:app`, one process, on a free loopback port; stopped afterwards.
    `without_redis` drops an inherited REDIS_URL (the in-process fast path);
    `extra_args` go to uvicorn's command line (e.g. `--ws-per-message-deflate false`)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        *extra_args,
    ]
    env = {**os.environ, "DATABASE_URL": database_url, **(extra_env or {})}
    if without_redis:
        env.pop("REDIS_URL", None)
    # The bookings' e-mails (written as .eml files without SMTP_URL) go to a directory
    # of the run's own, removed afterwards.
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory(prefix="bench-mail-") as mail:
        env.setdefault("MAIL_DIR", mail)
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
        )
        server = Server(f"http://127.0.0.1:{port}", process.pid, log)
        try:
            await wait_ready(server, process)
            yield server
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout=15)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            server.log = server.log_text()


async def wait_ready(server: Server, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(
                    f"the server exited ({process.returncode}):\n{server.log_text()}"
                )
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the server was not ready within 60 s:\n{server.log_text()}")


# ---- seeding over the API -------------------------------------------------------------------


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def data(
        self, query: str, variables: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"GraphQL failed ({response.status_code}): {response.text}")
        data: dict[str, Any] = body["data"]
        return data

    async def mutate(
        self, query: str, name: str, input: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        """A mutation's payload, which must report no errors."""
        payload: dict[str, Any] = (await self.data(query, {"input": input}, token))[name]
        if payload["errors"]:
            raise RuntimeError(f"{name} failed: {payload['errors']}")
        return payload

    async def sign_up(self, name: str, email: str | None = None) -> str:
        """A new user's access token."""
        email = email or f"bench-{uuid.uuid4().hex[:10]}@example.com"
        password = "a long enough passphrase"
        made = await self.mutate(
            SIGN_UP, "signUp", {"email": email, "password": password, "name": name}
        )
        token: str = made["accessToken"]
        return token


async def create_business(
    api: Api, token: str, staff_count: int, service_input: dict[str, Any] | None = None
) -> Business:
    slug = f"bench-{uuid.uuid4().hex[:10]}"
    org_input = {"name": "Bench Clinic", "slug": slug, "timeZone": ZONE, "currency": "EUR"}
    org = await api.mutate(CREATE_ORG, "createOrganization", org_input, token)
    org_id: str = org["organization"]["id"]
    service = await api.mutate(
        CREATE_SERVICE,
        "createService",
        {"organizationId": org_id, **(service_input or SERVICE)},
        token,
    )
    service_id: str = service["service"]["id"]
    staff_ids: list[str] = []
    for i in range(staff_count):
        member_input = {
            "organizationId": org_id,
            "name": f"Staff {i:02d}",
            "serviceIds": [service_id],
        }
        added = await api.mutate(ADD_STAFF, "addStaff", member_input, token)
        staff_id: str = added["staff"]["id"]
        await api.mutate(SET_WEEK, "setWeeklySchedule", {"staffId": staff_id, "hours": WEEK}, token)
        staff_ids.append(staff_id)
    return Business(org_id, service_id, staff_ids)


def database_key(global_id: str) -> uuid.UUID:
    """The UUID inside an opaque global id ("Type:uuid", URL-safe base64)."""
    padded = global_id + "=" * (-len(global_id) % 4)
    return uuid.UUID(base64.urlsafe_b64decode(padded).decode().partition(":")[2])


async def insert_time_off(
    database_url: str, business: Business, first_day: date, days: int, count: int
) -> None:
    """`count` short absences (15-90 minutes, within working hours), spread evenly over
    the staff and at random over the working days of the window."""
    rng = random.Random(SEED)
    org = database_key(business.org_id)
    staff = [database_key(s) for s in business.staff_ids]
    working_days = [
        d for d in (first_day + timedelta(days=i) for i in range(days)) if d.weekday() < 6
    ]
    records = []
    for i in range(count):
        day = rng.choice(working_days)
        closing = 13 * 60 if day.weekday() == 5 else 17 * 60
        minutes = rng.randrange(9 * 60, closing - 15, 5)
        start = datetime(day.year, day.month, day.day, tzinfo=BERLIN) + timedelta(minutes=minutes)
        length = timedelta(minutes=rng.choice(range(15, 91, 15)))
        records.append(
            (uuid.uuid4(), org, staff[i % len(staff)], start, start + length, "bench absence")
        )
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.copy_records_to_table(
            "time_off",
            records=records,
            columns=["id", "organization_id", "staff_id", "start_at", "end_at", "reason"],
        )
    finally:
        await conn.close()


def first_monday(weeks_ahead: int = 1) -> date:
    """The first Monday at least `weeks_ahead` weeks from today."""
    day = datetime.now(UTC).date() + timedelta(weeks=weeks_ahead)
    return day + timedelta(days=-day.weekday() % 7)


# ---- measuring ------------------------------------------------------------------------------


# ---- measuring ------------------------------------------------------------------------------


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def availability_variables(
    service_id: str, base: datetime, days: int, shift: int
) -> dict[str, str]:
    """The window of `days` days from `shift` seconds after `base`."""
    start = base + timedelta(seconds=shift)
    return {
        "service": service_id,
        "start": rfc3339(start),
        "end": rfc3339(start + timedelta(days=days)),
    }


def request_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})


HEADERS = {"content-type": "application/json"}


async def post(http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await http.post("/graphql", content=body, headers=HEADERS)


def checked(response: httpx.Response) -> dict[str, Any]:
    """The answer's data; anything but a clean 200 stops the benchmark."""
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = orjson.loads(response.content)
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    data: dict[str, Any] = answer["data"]
    return data


def clean(name: str, load: Load, fresh: bool = False) -> Load:
    """The run, which must have had only good answers and, `fresh`, never repeated a
    window."""
    problems = load.problems()
    if problems:
        raise RuntimeError(f"{name}: {problems}")
    if fresh and load.wrapped:
        raise RuntimeError(f"{name}: ran out of fresh windows: raise WINDOWS_PER_RUN")
    return load


MARKER_AVAILABILITY = '"availability":{"slots":['
MARKER_TYPENAME = '"__typename":"Query"'


async def slot_count(http: httpx.AsyncClient, name: str, body: bytes) -> tuple[int, int]:
    """The slots of one answer (there must be some) and its size in bytes."""
    response = await post(http, body)
    count = len(checked(response)["availability"]["slots"])
    if count == 0:
        raise RuntimeError(f"{name}: no slots offered")
    return count, len(response.content)


async def bench_case(
    http: httpx.AsyncClient,
    base_url: str,
    case: Case,
    business: Business,
    base: datetime,
    warm: bool = False,
) -> Measured:
    """Fresh windows; or, `warm`, the case's first window again and again (its answer
    is kept by the server: domain/availability/live.py)."""
    name = f"({case.key}) warm: the same window again" if warm else case.label

    def bodies(shifts: range) -> list[Request]:
        return [
            Request(
                request_body(
                    AVAILABILITY,
                    availability_variables(business.service_id, base, case.days, shift),
                )
            )
            for shift in shifts
        ]

    slots, size = 0, 0
    if not warm:
        for shift in range(case.warmup):  # untimed; every answer checked
            body = bodies(range(shift, shift + 1))[0].body
            count, size = await slot_count(http, name, body)
            if slots and count != slots:
                raise RuntimeError(f"{name}: {count} slots, not {slots}")
            slots = count
    runs: list[Load] = []
    for connections, shifts in ((1, LATENCY_SHIFTS), (CONCURRENCY, THROUGHPUT_SHIFTS)):
        sent = bodies(range(0, 1) if warm else shifts)
        load = await wrk(
            [base_url], sent, connections=connections, seconds=SECONDS, marker=MARKER_AVAILABILITY
        )
        runs.append(clean(name, load, fresh=not warm))
        # The first and the last window of the run: the same slots (now cheap to ask).
        for request in {sent[0].body, sent[min(load.requests, len(sent)) - 1].body}:
            count, size = await slot_count(http, name, request)
            if slots and count != slots:
                raise RuntimeError(f"{name}: {count} slots, not {slots}")
            slots = count
    return Measured(name, runs[0], runs[1], slots, size)


async def bench_typename(base_url: str) -> Measured:
    sent = [Request(request_body(TYPENAME))]
    runs = [
        clean(
            "`{ __typename }`",
            await wrk([base_url], sent, connections=c, seconds=SECONDS, marker=MARKER_TYPENAME),
        )
        for c in (1, CONCURRENCY)
    ]
    return Measured("`{ __typename }`", runs[0], runs[1])


async def bench_herd(
    http: httpx.AsyncClient, base_url: str, case: Case, business: Business, base: datetime
) -> Herd:
    """HERD clients ask for a window nobody asked before, all at once, and keep asking:
    req/s in the first second and in the seconds after it; and, first, the same clients
    on the case's first window (kept already by the warm row) for the warm rate."""

    def window(shift: int) -> bytes:
        variables = availability_variables(business.service_id, base, case.days, shift)
        return request_body(AVAILABILITY, variables)

    async def drive(body: bytes, seconds: int) -> Load:
        load = await wrk(
            [base_url],
            [Request(body)],
            connections=HERD,
            seconds=seconds,
            marker=MARKER_AVAILABILITY,
        )
        return clean("herd", load)

    warm = await drive(window(0), HERD_SECONDS[1])
    first = await drive(window(HERD_SHIFT), HERD_SECONDS[0])
    then = await drive(window(HERD_SHIFT), HERD_SECONDS[1])
    slots, _ = await slot_count(http, "herd", window(HERD_SHIFT))
    return Herd(warm, first, then, slots)


def graphql_floor(data: dict[str, Any], variables: dict[str, Any]) -> float:
    """Median ms of graphql-core executing AVAILABILITY over plain dicts (keyed by the
    schema's camelCase names, default resolvers) that produce exactly `data`."""
    schema = build_schema((ROOT / "schema.graphql").read_text())
    document = parse(AVAILABILITY)
    problems = validate(schema, document)
    if problems:
        raise RuntimeError(f"the query does not validate against schema.graphql: {problems}")
    root = copy.deepcopy(data)
    first = execute_sync(schema, document, root_value=root, variable_values=variables)
    if first.errors or first.data != data:
        raise RuntimeError(f"the floor does not reproduce the answer: {first.errors}")
    times: list[float] = []
    for _ in range(FLOOR_RUNS):
        started = time.perf_counter()
        execute_sync(schema, document, root_value=root, variable_values=variables)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# ---- report ---------------------------------------------------------------------------------


# ---- report ---------------------------------------------------------------------------------


def table(results: Sequence[Measured], typename: Measured) -> list[str]:
    lines = [
        "| case | slots | response bytes | median ms (1 client) | p95 ms "
        f"| req/s ({CONCURRENCY} clients) | vs `{{ __typename }}`: median ratio | req/s ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [typename, *results]:
        ratio = r.median_ms / typename.median_ms
        aim = ""
        if "warm" in r.name:
            aim = f" ({'meets' if ratio <= WARM_AIM else 'misses'} <= {WARM_AIM:.0f}x)"
        size = f"{r.response_bytes:,}" if r.response_bytes else "-"
        lines.append(
            f"| {r.name} | {r.slots or '-'} | {size} "
            f"| {r.median_ms:.2f} | {r.p95_ms:.2f} | {r.rps:,.0f} "
            f"| {ratio:.1f}x{aim} | {r.rps / typename.rps:.1%} |"
        )
    return lines


def herd_table(herd: Herd) -> list[str]:
    share = herd.then.rps / herd.warm.rps
    verdict = "meets" if share >= HERD_AIM else "misses"
    first, then = HERD_SECONDS
    return [
        f"| {HERD} clients at once, case (c) | slots | req/s, first {first} s "
        f"| p95 ms, first {first} s | req/s, next {then} s | p95 ms, next {then} s "
        f"| warm req/s, same {HERD} clients | first {first} s / warm | next {then} s / warm "
        f"| aim: next {then} s >= {HERD_AIM:.0%} of warm |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| a never-asked window | {herd.slots} | {herd.first.rps:,.0f} "
        f"| {herd.first.p95_ms:.0f} | {herd.then.rps:,.0f} | {herd.then.p95_ms:.0f} "
        f"| {herd.warm.rps:,.0f} | {herd.first.rps / herd.warm.rps:.0%} | {share:.0%} "
        f"| {verdict} |",
    ]


async def run(cases: Sequence[Case], herd_only: bool) -> None:
    # SIGTERM cleans up as Ctrl-C does: the database is dropped, the server stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    program = ensure_wrk()
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs shared by wrk ({program}), the server and PostgreSQL",
        flush=True,
    )
    base_day = first_monday()
    base = datetime(base_day.year, base_day.month, base_day.day, tzinfo=BERLIN)
    results: list[Measured] = []
    herd: Herd | None = None
    floor_lines: list[str] = []
    async with scratch_database() as database_url, running_server(database_url) as server:
        print(
            f"server: one uvicorn process (pid {server.pid}, 1 worker, --no-access-log "
            f"--log-level warning) at {server.base_url}",
            flush=True,
        )
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            api = Api(http)
            token = await api.sign_up("Bench")
            seeded = time.perf_counter()
            businesses: dict[str, Business] = {}
            for case in cases:
                business = await create_business(api, token, case.staff)
                if case.time_off:
                    await insert_time_off(
                        database_url, business, base_day, case.days, case.time_off
                    )
                businesses[case.key] = business
            print(
                f"seeded in {time.perf_counter() - seeded:.1f} s; windows from "
                f"{base_day} (a Monday), 00:00 {ZONE} + i seconds",
                flush=True,
            )
            # Untimed: the first requests of a process pay for imports, plans, pools.
            await wrk(
                [server.base_url],
                [Request(request_body(TYPENAME))],
                connections=CONCURRENCY,
                seconds=WARMUP_SECONDS,
                marker=MARKER_TYPENAME,
            )
            typename = await bench_typename(server.base_url)
            print("  measured `{ __typename }`", flush=True)
            big = next((c for c in cases if c.key == "c"), None)
            if herd_only:
                if big is None:
                    raise RuntimeError("the herd row needs case (c)")
                warm = await bench_case(
                    http, server.base_url, big, businesses["c"], base, warm=True
                )
                results.append(warm)
                herd = await bench_herd(http, server.base_url, big, businesses["c"], base)
            else:
                for case in cases:
                    results.append(
                        await bench_case(http, server.base_url, case, businesses[case.key], base)
                    )
                    print(f"  measured {case.label}", flush=True)
                for case in cases:
                    results.append(
                        await bench_case(
                            http, server.base_url, case, businesses[case.key], base, warm=True
                        )
                    )
                    print(f"  measured {case.label}, warm", flush=True)
                if big is not None:
                    herd = await bench_herd(http, server.base_url, big, businesses["c"], base)
                    print("  measured the herd", flush=True)
                    # A fresh window too, though this answer is only the floor's input.
                    variables = availability_variables(
                        businesses["c"].service_id, base, big.days, FLOOR_SHIFT
                    )
                    data = checked(await post(http, request_body(AVAILABILITY, variables)))
                    floor = graphql_floor(data, variables)
                    ratio = results[cases.index(big)].median_ms / floor
                    verdict = "meets" if ratio <= 2.0 else "misses"
                    floor_lines = [
                        f"GraphQL floor, case (c): graphql-core {graphql.__version__} "
                        f"execute_sync over plain dicts, median of {FLOOR_RUNS}: {floor:.2f} ms",
                        f"(c) median latency / floor: {ratio:.2f} "
                        f"({verdict} the product's aim of <= 2.0)",
                    ]

    print()
    print("\n".join(table(results, typename)))
    print()
    if herd is not None:
        print("\n".join(herd_table(herd)))
        print()
    for line in floor_lines:
        print(line)
    loads = [typename.latency, typename.throughput]
    for r in results:
        loads += [r.latency, r.throughput]
    cpu = sum(load.client_cpu for load in loads)
    wall = sum(load.seconds for load in loads)
    print(
        f"client: wrk 1 thread, keep-alive, {SECONDS} s with 1 connection (median and p95 "
        f"latency) then {SECONDS} s with {CONCURRENCY} (req/s), after an untimed "
        f"{WARMUP_SECONDS} s of `{{ __typename }}`; every availability request asks for a "
        "window never asked before, except in the warm rows, which ask for the first "
        "window of their case again and again, and in the herd row, where "
        f"{HERD} connections ask for one new window of case (c) from the start (its warm "
        f"rate: the same {HERD} connections on the first window of case (c)); wrk used "
        f"{cpu:.1f} s of CPU in {wall:.0f} s of load ({cpu / wall:.0%} of one CPU)"
    )
    log = server.log.strip()
    if log:
        print("\nserver log (warnings and errors):")
        print("\n".join(log.splitlines()[-30:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cases", default="abc", help="which cases to run, e.g. 'c' (default: abc)"
    )
    parser.add_argument(
        "--herd-only",
        action="store_true",
        help="only `{ __typename }`, the warm row of case (c) and the herd row",
    )
    args = parser.parse_args()
    cases = [c for c in CASES if c.key in (args.cases if not args.herd_only else "c")]
    if not cases:
        parser.error("no such case")
    try:
        asyncio.run(run(cases, args.herd_only))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted: the bench database was dropped and the server stopped")


if __name__ == "__main__":
    main()
