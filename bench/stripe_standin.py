"""The tests' Stripe stand-in (tests/stripe_standin.py) as a process of its own, for
bench/booking.py: its CPU is then measured apart from the bench's and the server's, and
it does not share their event loops.

    .venv/bin/python -m bench.stripe_standin

Prints `READY <base URL>` once it listens on a free loopback port. `GET /bench/stats`
answers what it has done so far (JSON): the intents it created, and the requests it
answered by endpoint and by HTTP status; on SIGTERM or SIGINT it stops and prints the
same as `STATS <JSON>`.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import uvloop
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `tests` is a package of the checkout
    sys.path.insert(0, str(ROOT))

from tests.stripe_standin import StripeStandIn  # noqa: E402

READY = "READY "
STATS = "STATS "
STATS_PATH = "/bench/stats"  # beside Stripe's /v1/...: never a path the app calls
ID = re.compile(r"/(pi|re)_[A-Za-z0-9]+")


class BenchStandIn(StripeStandIn):
    """The stand-in, answering STATS_PATH too (not recorded as a Stripe request)."""

    def __init__(self) -> None:
        super().__init__()
        self.app.router.routes.insert(0, Route(STATS_PATH, self._stats, methods=["GET"]))

    def stats(self) -> dict[str, Any]:
        # By endpoint (ids left out): the app's own calls told apart (intents made by
        # createBooking, retrievals by the reconciliation).
        calls = Counter(f"{r.method} {ID.sub('/{id}', r.path)}" for r in self.requests)
        return {
            "created_intents": self.created_intents,
            "requests": len(self.requests),
            "calls": dict(calls),
            "replayed": sum(r.replayed for r in self.requests),
            "statuses": dict(Counter(str(r.status) for r in self.requests)),
        }

    async def _stats(self, request: Request) -> Response:
        return Response(orjson.dumps(self.stats()), media_type="application/json")


async def serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with BenchStandIn.running() as stand_in:
        print(f"{READY}{stand_in.base_url}", flush=True)
        await stop.wait()
    assert isinstance(stand_in, BenchStandIn)
    print(f"{STATS}{orjson.dumps(stand_in.stats()).decode()}", flush=True)


def main() -> None:
    # uvloop, as uvicorn serves the app: the stand-in takes as little of the shared CPUs
    # as a loopback HTTP server in Python can.
    uvloop.run(serve())


if __name__ == "__main__":
    main()
