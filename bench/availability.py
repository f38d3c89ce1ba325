"""Benchmark of the `availability` query over HTTP, against the real server.

    .venv/bin/python bench/availability.py      (or: make bench)

A database of its own on BENCH_DATABASE_URL's server (default: the local one) is
created, migrated and dropped at the end; the server is `uvicorn app:app`, one
process, started as a subprocess so that it does not share a CPU-bound event loop
with the client. Every business is set up over the GraphQL API, as an SPA would;
only the 2,000 time-off entries of case (c) are inserted with SQL.

Every measured availability request asks for a window never asked before: the
window of request i starts i minutes after the case's base (local midnight of a
Monday), so a cache keyed on the window cannot answer it. The shift stays below
09:00 local time, so every answer of a case holds the same slots. The warm rows then
ask for one window again and again: the server keeps its answer until a change
touches it (realtime/live.py), and nothing changes during the bench.

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
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ZONE = "Europe/Berlin"
BERLIN = ZoneInfo(ZONE)
CONCURRENCY = 4
FLOOR_RUNS = 30
# Window shifts stay below this many minutes: before the first working hour.
MAX_SHIFT_MINUTES = 9 * 60
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
    warmup: int
    requests: int  # sequential, for latency
    throughput_requests: int  # CONCURRENCY at a time

    @property
    def label(self) -> str:
        days = "1 day" if self.days == 1 else f"{self.days} days"
        text = f"({self.key}) {self.staff} staff, {days}"
        return f"{text}, {self.time_off:,} time off" if self.time_off else text


CASES = (
    Case("a", staff=1, days=1, time_off=0, warmup=20, requests=200, throughput_requests=200),
    Case("b", staff=5, days=7, time_off=0, warmup=20, requests=200, throughput_requests=200),
    Case("c", staff=20, days=31, time_off=2000, warmup=5, requests=50, throughput_requests=60),
)
TYPENAME_WARMUP, TYPENAME_REQUESTS, TYPENAME_THROUGHPUT = 50, 300, 600
WARM_AIM = 10.0  # the same window again: latency within 10x of `{ __typename }`


@dataclass(frozen=True, slots=True)
class Business:
    org_id: str
    service_id: str
    staff_ids: list[str]


@dataclass(slots=True)
class Measured:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    throughput: float = 0.0  # requests per second
    slots: int = 0
    response_bytes: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[94] * 1000


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
    with tempfile.TemporaryFile() as log:
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


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def availability_variables(
    service_id: str, base: datetime, days: int, shift: int
) -> dict[str, str]:
    start = base + timedelta(minutes=shift)
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


Check = Callable[[dict[str, Any]], None]


async def measure(
    http: httpx.AsyncClient,
    result: Measured,
    bodies: Iterator[bytes],
    warmup: int,
    requests: int,
    throughput_requests: int,
    check: Check,
) -> None:
    """Warm-up, then `requests` sequential requests (latency), then
    `throughput_requests` with CONCURRENCY in flight (requests per second). Each
    request takes the next body; answers are checked outside the timed part."""
    for _ in range(warmup):
        check(checked(await post(http, next(bodies))))
    for _ in range(requests):
        body = next(bodies)
        started = time.perf_counter()
        response = await post(http, body)
        result.latencies.append(time.perf_counter() - started)
        check(checked(response))
        result.response_bytes = len(response.content)

    batch = [next(bodies) for _ in range(throughput_requests)]
    queue = iter(batch)
    responses: list[httpx.Response] = []

    async def worker() -> None:
        for body in queue:  # shared: each body is taken once
            responses.append(await post(http, body))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    result.throughput = len(batch) / (time.perf_counter() - started)
    for response in responses:
        check(checked(response))


def same_slots(result: Measured) -> Check:
    """Every answer of a case must offer the same number of slots (and some)."""

    def check(data: dict[str, Any]) -> None:
        count = len(data["availability"]["slots"])
        if result.slots == 0:
            if count == 0:
                raise RuntimeError(f"{result.name}: no slots offered")
            result.slots = count
        elif count != result.slots:
            raise RuntimeError(f"{result.name}: {count} slots, not {result.slots}")

    return check


def typename_check(data: dict[str, Any]) -> None:
    if data != {"__typename": "Query"}:
        raise RuntimeError(f"unexpected answer: {data}")


async def bench_case(
    http: httpx.AsyncClient, case: Case, business: Business, base: datetime, warm: bool = False
) -> Measured:
    """Fresh windows; or, `warm`, the case's first window again and again (its answer
    is kept by the server: realtime/live.py)."""
    result = Measured(f"({case.key}) warm: the same window again" if warm else case.label)
    total = case.warmup + case.requests + case.throughput_requests
    assert total <= MAX_SHIFT_MINUTES, f"{case.label}: too many requests for fresh windows"
    bodies = (
        request_body(
            AVAILABILITY,
            availability_variables(business.service_id, base, case.days, 0 if warm else i),
        )
        for i in range(total)
    )
    await measure(
        http,
        result,
        bodies,
        case.warmup,
        case.requests,
        case.throughput_requests,
        same_slots(result),
    )
    return result


async def bench_typename(http: httpx.AsyncClient) -> Measured:
    result = Measured("`{ __typename }`")
    body = request_body(TYPENAME)
    bodies = iter(lambda: body, b"")  # the same body, forever
    await measure(
        http,
        result,
        bodies,
        TYPENAME_WARMUP,
        TYPENAME_REQUESTS,
        TYPENAME_THROUGHPUT,
        typename_check,
    )
    return result


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


def table(results: Sequence[Measured], typename: Measured) -> list[str]:
    lines = [
        f"| case | slots | response bytes | median ms | p95 ms | req/s ({CONCURRENCY} concurrent) "
        "| vs `{ __typename }` (median ratio) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [typename, *results]:
        ratio = r.median_ms / typename.median_ms
        aim = ""
        if "warm" in r.name:
            aim = f" ({'meets' if ratio <= WARM_AIM else 'misses'} <= {WARM_AIM:.0f}x)"
        lines.append(
            f"| {r.name} | {r.slots or '-'} | {r.response_bytes:,} "
            f"| {r.median_ms:.2f} | {r.p95_ms:.2f} | {r.throughput:,.0f} "
            f"| {ratio:.1f}x{aim} |"
        )
    return lines


async def run(cases: Sequence[Case]) -> None:
    # SIGTERM cleans up as Ctrl-C does: the database is dropped, the server stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    base_day = first_monday()
    base = datetime(base_day.year, base_day.month, base_day.day, tzinfo=BERLIN)
    async with scratch_database() as database_url, running_server(database_url) as server:
        print(
            f"server: one uvicorn process (pid {server.pid}, 1 worker, --no-access-log "
            f"--log-level warning) at {server.base_url}",
            flush=True,
        )
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as http:
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
                f"{base_day} (a Monday), 00:00 {ZONE} + i minutes",
                flush=True,
            )

            typename = await bench_typename(http)
            results: list[Measured] = []
            for case in cases:
                results.append(await bench_case(http, case, businesses[case.key], base))
                print(f"  measured {case.label}", flush=True)
            for case in cases:
                results.append(await bench_case(http, case, businesses[case.key], base, warm=True))
                print(f"  measured {case.label}, warm", flush=True)

            floor_lines: list[str] = []
            big = next((c for c in cases if c.key == "c"), None)
            if big is not None:
                # A fresh window too, though this answer is only the floor's input.
                variables = availability_variables(
                    businesses["c"].service_id, base, big.days, MAX_SHIFT_MINUTES - 1
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
    for line in floor_lines:
        print(line)
    counts = ", ".join(f"({c.key}) {c.requests} + {c.throughput_requests}" for c in cases)
    print(
        "client: one httpx.AsyncClient (keep-alive), after a warm-up: sequential requests "
        f"for latency + requests {CONCURRENCY} at a time for req/s: `{{ __typename }}` "
        f"{TYPENAME_REQUESTS} + {TYPENAME_THROUGHPUT}, {counts}; every availability "
        "request asks for a window never asked before, except in the warm rows, which ask "
        "for the first window of their case again and again"
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
    args = parser.parse_args()
    cases = [c for c in CASES if c.key in args.cases]
    if not cases:
        parser.error("no such case")
    try:
        asyncio.run(run(cases))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted: the bench database was dropped and the server stopped")


if __name__ == "__main__":
    main()
