"""An outbox reader in a process of its own, for tests/test_outbox.py:

    DATABASE_URL=... python -m tests.outbox_reader_process --kind KIND --consumer NAME...

It drains the named consumers on a connection of its own, as every app process's reader
does (infra/relay.py), and reports on stdout, one JSON object a line:

    {"event": "ready"}                                     consumers registered
    {"event": "handled", "consumer": NAME, "values": [n]}  a batch's rows of KIND
    {"event": "holding", "consumer": NAME}                 see below
    {"event": "done"}                                      stopped between drains

What the test says on stdin, a word a line, makes the order of what the two processes do
certain where it must be:
- Its first batch with rows of KIND is held (the handler does not return, so that
  consumer stays leased to this process) until "go": meanwhile the test's process can
  claim only the other consumer.
- From "go" on it stays off the held consumer until "share" (a batch of it already
  claimed is given back unhandled, as a failing handler does): the test's process
  takes that consumer over from the position this one left.
- "stop" ends it between drains, never inside a batch: everything it reported has been
  passed for good. Its stdin closed (the test gone) ends it too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

import asyncpg
import orjson

from infra import outbox
from infra.outbox import Consumer, Row

POLL_EVERY = 0.005  # seconds between drains when there was nothing to read


def report(message: dict[str, object]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


class Commands:
    """What the test says on stdin."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.share = asyncio.Event()
        self.stop = asyncio.Event()
        self.held: str | None = None  # the consumer whose first batch was held

    async def listen(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        words = {"go": self.go, "share": self.share, "stop": self.stop}
        try:
            while line := await reader.readline():
                word = line.decode().strip()
                if word not in words:
                    raise SystemExit(f"unknown command {word!r}")
                words[word].set()
        finally:
            for event in words.values():  # stdin closed: nothing to wait for any more
                event.set()

    def stays_off(self, name: str) -> bool:
        return name == self.held and not self.share.is_set()


class GivenBack(Exception):
    """A batch of the consumer it stays off: not reported, not passed (outbox.drain
    releases it for the other process)."""


def consumer(name: str, kind: str, commands: Commands) -> Consumer:
    async def handle(rows: list[Row]) -> None:
        if commands.stays_off(name):  # the batch after the held one, in the same drain
            raise GivenBack(name)
        await asyncio.sleep(0.001)  # as the test's own handlers: room for the other to claim
        values: list[int] = []
        for row in rows:
            if row.kind == kind:
                assert isinstance(row.payload, dict)
                values.append(int(row.payload["n"]))
        report({"event": "handled", "consumer": name, "values": values})
        if values and commands.held is None:
            commands.held = name
            report({"event": "holding", "consumer": name})
            await commands.go.wait()

    return Consumer(name, handle, batch=7)


async def main(dsn: str, kind: str, names: list[str]) -> None:
    commands = Commands()
    listening = asyncio.create_task(commands.listen())
    consumers = [consumer(name, kind, commands) for name in names]
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        for each in consumers:
            await outbox.register(connection, each)
        report({"event": "ready"})
        while not commands.stop.is_set():
            # As OutboxReader.drain, but able to leave one consumer out for a while.
            handed = 0
            for each in consumers:
                if not commands.stays_off(each.name):
                    with contextlib.suppress(GivenBack):
                        handed += await outbox.drain(connection, each)
            if handed == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_EVERY):
                        await commands.stop.wait()
        report({"event": "done"})
    finally:
        await connection.close()
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="An outbox reader in a process of its own.")
    parser.add_argument("--kind", required=True, help="the row kind whose values to report")
    parser.add_argument("--consumer", action="append", required=True, dest="consumers")
    arguments = parser.parse_args()
    asyncio.run(main(os.environ["DATABASE_URL"], arguments.kind, arguments.consumers))
