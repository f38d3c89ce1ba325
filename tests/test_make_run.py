"""`make run` from a fresh checkout: embedded PostgreSQL, migrations, demo data, server;
Ctrl-C leaves no PostgreSQL behind; the next run reuses the data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from config import ROOT
from tests.conftest import free_port


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env.update({"BOOKING_DATA_DIR": str(data_dir), "PORT": str(port)})
    return subprocess.Popen(
        [sys.executable, "run.py"],
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


def test_make_run_embedded_round_trip(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
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
    assert "owner@demo-clinic.test" in output
    assert "created now" in output
    assert _postgres_processes(data_dir) == [], "Ctrl-C left PostgreSQL running"

    proc = _start(data_dir, port)
    try:
        _wait_ready(proc, port)
    finally:
        output = _stop(proc)
    assert "kept from before" in output
    assert _postgres_processes(data_dir) == []
