"""GraphiQL served by this server alone, so it works with no internet.

The browser files are vendored by scripts/vendor_graphiql.sh into static/vendor/ and
served at /static. The page's fetcher POSTs queries and mutations to /graphql and runs
subscriptions over graphql-transport-ws (graphql-ws) on the same path. The Authorization
header typed in the headers pane goes on HTTP and as `connectionParams.authorization` on
the WebSocket; otherwise the accessToken of the last signIn/signUp/refreshSession answer
(remembered in localStorage) is used. A banner says which. Likewise the id and manage token
of the last createBooking answer fill in an operation's $bookingId and $manageToken when
the Variables leave them out (the paying examples: pay, watch bookingChanged).
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The same pins as scripts/vendor_graphiql.sh (static/vendor/MANIFEST.txt lists the files).
VENDOR = {
    "react": "18.3.1",
    "react-dom": "18.3.1",
    "graphiql": "3.9.0",
    "@graphiql/plugin-explorer": "3.2.6",
    "graphql-ws": "5.16.2",
}
IMMUTABLE = "public, max-age=31536000, immutable"


def vendor_url(package: str, file: str) -> str:
    return f"/static/vendor/{package}@{VENDOR[package]}/{file}"


STYLESHEETS = [
    vendor_url("graphiql", "graphiql.min.css"),
    vendor_url("@graphiql/plugin-explorer", "dist/style.css"),
]
SCRIPTS = [
    vendor_url("react", "umd/react.production.min.js"),
    vendor_url("react-dom", "umd/react-dom.production.min.js"),
    vendor_url("graphiql", "graphiql.min.js"),
    vendor_url("@graphiql/plugin-explorer", "dist/index.umd.js"),
    vendor_url("graphql-ws", "umd/graphql-ws.min.js"),
]


class _StaticFiles(StaticFiles):
    """Versioned vendor files (static/vendor/<package>@<version>/...) never change."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        parts = path.split("/")
        versioned = len(parts) > 2 and parts[0] == "vendor" and "@" in parts[1]
        if versioned and response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response


GRAPHIQL_ROUTES: list[BaseRoute] = [
    Mount("/static", app=_StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
]

# A first visit (nothing remembered by GraphiQL, no ?q=) opens on these, run against the
# demo business that `make run` or `python -m commands.seed` creates; the page fills in the
# Variables (the demo clinic's first service and its first paid one, the next 7 days, the
# first free slot of each). tests/test_graphiql_examples.py validates the document against
# the schema and runs each operation.
EXAMPLES = (STATIC_DIR / "graphiql" / "examples.graphql").read_text()

# Nothing may load from another host: the policy makes the browser refuse it.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
)

# The page: a template with @NAME@ holes, like /demo's.
_PAGE = (STATIC_DIR / "graphiql" / "index.html").read_text()


_HTML = (
    _PAGE.replace("@CSP@", CSP)
    .replace("@STYLESHEETS@", "\n".join(f'<link rel="stylesheet" href="{u}">' for u in STYLESHEETS))
    .replace("@SCRIPTS@", "\n".join(f'<script src="{u}"></script>' for u in SCRIPTS))
    .replace("@EXAMPLES@", json.dumps(EXAMPLES).replace("</", "<\\/"))
)


def graphiql_html() -> str:
    """The GraphiQL page: every file it loads comes from /static/vendor/."""
    return _HTML
