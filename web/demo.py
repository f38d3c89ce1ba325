"""/demo: the live slot board, plain HTML and JavaScript served by the app.

Pick a service and a week of a business (?business=<slug>, the seeded demo clinic by
default) and watch its slots appear and vanish as anyone books, cancels or changes a
schedule; book one with a click, as a guest. A paid service's booking waits for its
payment (PENDING_PAYMENT, until its expiry): with the offline provider a "Pay (test
mode)" button pays it, and its status follows the bookingChanged subscription. It uses
the vendored graphql-ws client (static/vendor) and nothing from outside this server;
the page is static/demo/ (index.html, demo.js the board, booking.js the booking).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

PAGE = Path(__file__).resolve().parent.parent / "static" / "demo" / "index.html"


async def demo_page(request: Request) -> Response:
    return FileResponse(PAGE, media_type="text/html", headers={"cache-control": "no-cache"})


DEMO_ROUTES: list[BaseRoute] = [Route("/demo", demo_page)]
