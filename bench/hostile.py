"""Hostile and careless requests against one `uvicorn app:app` process.

    .venv/bin/python bench/hostile.py

A business of 4 services and 5 staff is set up over the API in a database of its own.
Then each case below is sent alone while a second client asks `{ __typename }` every
100 ms; the table gives how the case was answered, how long it took (capped at
CAP seconds), the slowest `{ __typename }` meanwhile and the server's resident memory
after it. Each case starts on a fresh server, so one cannot slow the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `bench` is a package of the checkout
    sys.path.insert(0, str(ROOT))

from bench.availability import (  # noqa: E402
    CREATE_SERVICE,
    SERVICE,
    Api,
    create_business,
    first_monday,
    rfc3339,
    running_server,
    scratch_database,
)

CAP = 30.0


def nested(slug: str, levels: int) -> str:
    """`levels` fields deep: organization > services > edges > node > organization..."""
    inner = "name"
    depth = 2
    while depth < levels:
        inner = f"services {{ edges {{ node {{ organization {{ {inner} }} }} }} }}"
        depth += 4
    return f'{{ organization(slug: "{slug}") {{ {inner} }} }}'


@dataclass(slots=True)
class Row:
    case: str
    status: str
    answered: str
    slowest_probe_ms: float
    rss_mb: float


async def one_case(
    database_url: str, name: str, body: bytes, content_type: str = "application/json"
) -> Row:
    async with running_server(database_url) as server:
        process = psutil.Process(server.pid)
        probes: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=CAP) as http:
                while not done.is_set():
                    started = time.perf_counter()
                    with contextlib.suppress(httpx.HTTPError):
                        await http.post("/graphql", json={"query": "{ __typename }"})
                    probes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.1)

        prober = asyncio.create_task(probe())
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=CAP) as http:
            try:
                response = await http.post(
                    "/graphql", content=body, headers={"content-type": content_type}
                )
                elapsed = time.perf_counter() - started
                status = f"{response.status_code} {_code(response)}"
                answered = f"{elapsed:.3f} s"
            except httpx.TimeoutException:
                status, answered = "no answer", f"> {CAP:g} s"
        done.set()
        await prober
        return Row(name, status, answered, max(probes) * 1000, process.memory_info().rss / 2**20)


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:40]
    errors = body.get("errors") or []
    return ",".join(sorted({e.get("extensions", {}).get("code", "?") for e in errors})) or "ok"


async def main() -> None:
    async with scratch_database() as database_url:
        async with (
            running_server(database_url) as server,
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
        ):
            api = Api(http)
            token = await api.sign_up("Owner")
            business = await create_business(api, token, 5)
            for i in range(3):
                await api.mutate(
                    CREATE_SERVICE,
                    "createService",
                    {"organizationId": business.org_id, **SERVICE, "name": f"S{i}"},
                    token,
                )
            slug = (
                await api.data(
                    "query($id: ID!) { node(id: $id) { ... on Organization { slug } } }",
                    {"id": business.org_id},
                )
            )["node"]["slug"]
        monday = datetime.combine(first_monday(), datetime.min.time(), UTC)
        aliases = " ".join(
            f'a{i}: availability(serviceId: "{business.service_id}",'
            f' start: "{rfc3339(monday + timedelta(minutes=i))}",'
            f' end: "{rfc3339(monday + timedelta(days=7, minutes=i))}") {{ slots {{ start }} }}'
            for i in range(500)
        )

        cases = [
            ("nesting 6 deep", orjson.dumps({"query": nested(slug, 6)})),
            ("nesting 10 deep", orjson.dumps({"query": nested(slug, 10)})),
            ("nesting 14 deep", orjson.dumps({"query": nested(slug, 14)})),
            ("nesting 30 deep", orjson.dumps({"query": nested(slug, 30)})),
            ("500 availability aliases", orjson.dumps({"query": f"{{ {aliases} }}"})),
            (
                "variable of the wrong type",
                orjson.dumps(
                    {
                        "query": "query($n: Int) { myBookings(first: $n) { edges { cursor } } }",
                        "variables": {"n": "ten"},
                    }
                ),
            ),
            ('body "hello"', b'"hello"'),
        ]
        rows = [await one_case(database_url, name, body) for name, body in cases]
    print("| case | answer | answered in | slowest `{ __typename }` meanwhile | server RSS after |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.case} | {row.status} | {row.answered} | {row.slowest_probe_ms:,.0f} ms"
            f" | {row.rss_mb:,.0f} MB |"
        )


if __name__ == "__main__":
    asyncio.run(main())
