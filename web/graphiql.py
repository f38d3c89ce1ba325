"""GraphiQL served by this server alone, so it works with no internet.

The browser files are vendored by scripts/vendor_graphiql.sh into static/vendor/ and
served at /static. The page's fetcher POSTs queries and mutations to /graphql and runs
subscriptions over graphql-transport-ws (graphql-ws) on the same path. The Authorization
header typed in the headers pane goes on HTTP and as `connectionParams.authorization` on
the WebSocket; otherwise the accessToken of the last signIn/signUp/refreshSession answer
(remembered in localStorage) is used. A banner says which.
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
# Variables (the demo clinic's first service, the next 7 days, their first free slot).
# tests/test_graphiql_examples.py validates the document against the schema.
EXAMPLES = """\
# Booking API examples, on the demo business that
# `make run` (or `python -m commands.seed`) creates. Press the run
# button and pick one; their Variables are filled in below.
#
# Availability  free slots of the demo clinic's first
#               service in the next 7 days
# BookAsGuest   books the Variables' "slot" as a guest (run
#               it before SignIn: signed in, you book as
#               yourself and `guest` is ignored)
# SlotsLive     the same slots, pushed again whenever anyone
#               books or cancels: try a booking at /demo
# SignIn        the demo owner; the page then sends its
#               token with every request

query Availability($serviceId: ID!, $start: DateTime!, $end: DateTime!) {
  availability(serviceId: $serviceId, start: $start, end: $end) {
    service { name durationMinutes }
    timeZone
    days { date slots { start end remainingCapacity staff { name } } }
  }
}

mutation BookAsGuest($serviceId: ID!, $slot: DateTime!, $key: String!) {
  createBooking(input: {
    serviceId: $serviceId
    start: $slot
    idempotencyKey: $key
    guest: { name: "Grace Guest", email: "grace@example.com" }
  }) {
    booking { reference status start end staff { name } }
    manageToken
    errors { code field message }
  }
}

subscription SlotsLive($serviceId: ID!, $start: DateTime!, $end: DateTime!) {
  availabilityChanged(serviceId: $serviceId, start: $start, end: $end) {
    days { date slots { start remainingCapacity } }
  }
}

mutation SignIn {
  signIn(input: { email: "owner@demo-clinic.test", password: "demo-owner-2026" }) {
    accessToken
    user { name email }
    errors { code message }
  }
}
"""

# Nothing may load from another host: the policy makes the browser refuse it.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="@CSP@">
<title>Booking API - GraphiQL</title>
<link rel="icon" href="data:,">
@STYLESHEETS@
<style>
  html, body { height: 100%; margin: 0; overflow: hidden; }
  body { display: flex; flex-direction: column; }
  #graphiql { flex: 1; min-height: 0; display: flex; }
  #auth-note { font: 12px/1.6 system-ui, sans-serif; padding: 1px 12px; color: #444;
    background: #f3f3f0; border-bottom: 1px solid #ddd; }
  #auth-note button { font: inherit; padding: 0 6px; margin-left: 6px; cursor: pointer; }
  #auth-note code { font-family: monospace; }
</style>
</head>
<body>
<div id="auth-note" role="status"></div>
<div id="graphiql">Loading...</div>
@SCRIPTS@
<script>
"use strict";
(function () {
  const HTTP_URL = new URL("/graphql", window.location.href).toString();
  const WS_URL = HTTP_URL.replace(/^http/, "ws"); // http: -> ws:, https: -> wss:
  const TOKEN_KEY = "booking-api:graphiql:access-token";
  const TOKEN_FIELDS = new Set(["signIn", "signUp", "refreshSession"]);
  const GraphQL = GraphiQL.GraphQL; // graphql-js, bundled in graphiql's UMD build
  const EXAMPLES = @EXAMPLES@;

  function load() {
    try { return window.localStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  let remembered = load(); // accessToken of the last sign-in answer
  let typed = ""; // Authorization typed in the headers pane

  function remember(token) {
    remembered = token;
    try {
      if (token) window.localStorage.setItem(TOKEN_KEY, token);
      else window.localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage unavailable: remembered for this page only */ }
    showNote();
  }
  window.addEventListener("storage", function (event) {
    if (event.key === TOKEN_KEY) { remembered = event.newValue || ""; showNote(); }
  });

  function typedAuthorization(headers) {
    for (const [name, value] of Object.entries(headers || {})) {
      if (name.toLowerCase() === "authorization" && value) return String(value);
    }
    return "";
  }
  function setTyped(headers) {
    const value = typedAuthorization(headers);
    if (value !== typed) { typed = value; showNote(); }
  }
  function authorization() {
    return typed || (remembered ? "Bearer " + remembered : "");
  }

  const note = document.getElementById("auth-note");
  function tail(value) { return "\\u2026" + value.replace(/^bearer\\s+/i, "").slice(-4); }
  function showNote() {
    note.replaceChildren();
    const code = document.createElement("code");
    if (typed) {
      code.textContent = tail(typed);
      note.append("Authorization from the headers pane: ", code);
    } else if (remembered) {
      code.textContent = tail(remembered);
      const clear = document.createElement("button");
      clear.type = "button";
      clear.textContent = "clear";
      clear.addEventListener("click", function () { remember(""); });
      note.append("Signed in as token ", code, " (from the last sign-in)", clear);
    } else {
      note.append("Anonymous. A signIn, signUp or refreshSession answer's accessToken is "
        + "used from then on, or type {\\"Authorization\\": \\"Bearer \\u2026\\"} in Headers.");
    }
  }
  showNote();

  function operationOf(params, opts) {
    let doc = opts && opts.documentAST;
    if (!doc) {
      try { doc = GraphQL.parse(params.query); } catch (e) { return null; }
    }
    return GraphQL.getOperationAST(doc, params.operationName || undefined);
  }

  function rememberFrom(operation, body) {
    const data = body && body.data;
    if (!data || operation.operation !== "mutation") return;
    for (const field of operation.selectionSet.selections) {
      if (field.kind !== "Field" || !TOKEN_FIELDS.has(field.name.value)) continue;
      const payload = data[(field.alias || field.name).value];
      if (payload && typeof payload.accessToken === "string" && payload.accessToken) {
        remember(payload.accessToken);
      }
    }
  }

  async function post(params, headers, operation) {
    const sent = Object.assign({}, headers);
    if (!typedAuthorization(sent) && remembered) sent["Authorization"] = "Bearer " + remembered;
    sent["Content-Type"] = "application/json";
    sent["Accept"] = "application/json";
    const response = await fetch(HTTP_URL, {
      method: "POST", headers: sent, body: JSON.stringify(params), credentials: "same-origin",
    });
    const text = await response.text();
    let body;
    try { body = JSON.parse(text); } catch (e) {
      return { errors: [{ message: "HTTP " + response.status + ": " + text }] };
    }
    if (operation) rememberFrom(operation, body);
    return body;
  }

  let socket = null;
  let socketAuthorization = "";
  function socketClient() {
    const current = authorization();
    if (socket && socketAuthorization === current) return socket;
    if (socket) socket.dispose(); // the token changed: a new connection carries the new one
    socketAuthorization = current;
    socket = graphqlWs.createClient({
      url: WS_URL,
      connectionParams: current ? { authorization: current } : {},
      lazy: true,
    });
    return socket;
  }

  function subscribe(params) {
    const client = socketClient();
    return {
      subscribe: function (observer) {
        const dispose = client.subscribe(
          { query: params.query, variables: params.variables, operationName: params.operationName },
          {
            next: function (value) { observer.next(value); },
            complete: function () { observer.complete(); },
            error: function (error) {
              if (Array.isArray(error)) { // GraphQL errors: shown as an answer
                observer.next({ errors: error });
                observer.complete();
              } else if (error instanceof Error) {
                observer.error(error);
              } else { // a CloseEvent
                const closed = error && error.code
                  ? "WebSocket closed: " + error.code + " " + (error.reason || "")
                  : "WebSocket error";
                observer.error(new Error(closed));
              }
            },
          },
        );
        return { unsubscribe: dispose };
      },
    };
  }

  function fetcher(params, opts) {
    const headers = (opts && opts.headers) || {};
    setTyped(headers);
    const operation = operationOf(params, opts);
    if (operation && operation.operation === "subscription") return subscribe(params);
    return post(params, headers, operation);
  }

  const url = new URL(window.location.href);
  function onEditQuery(query) {
    url.searchParams.set("q", query);
    window.history.replaceState(null, "", url.toString());
  }
  function onEditHeaders(text) {
    try { setTyped(JSON.parse(text || "{}")); } catch (e) { /* still being typed */ }
  }

  // The examples' variables, from public data (no token: a stale one would fail them).
  async function lookup(query, variables) {
    const response = await fetch(HTTP_URL, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: query, variables: variables }),
    });
    return (await response.json()).data;
  }
  async function exampleVariables() {
    const day = 24 * 3600 * 1000;
    const start = new Date(Math.ceil(Date.now() / day) * day); // next midnight UTC
    const iso = function (date) { return date.toISOString().replace(".000Z", "Z"); };
    const values = {
      serviceId: "no demo-clinic yet: run `python -m commands.seed`, then reload",
      start: iso(start), end: iso(new Date(start.getTime() + 7 * day)), slot: null,
      key: Date.now().toString(36) + Math.random().toString(36).slice(2),
    };
    try {
      const org = (await lookup(
        '{ organization(slug: "demo-clinic") { services(first: 1) { edges { node { id } } } } }',
      )).organization;
      const edge = org && org.services.edges[0];
      if (edge) {
        values.serviceId = edge.node.id;
        const free = (await lookup(
          "query($s: ID!, $a: DateTime!, $b: DateTime!) "
            + "{ availability(serviceId: $s, start: $a, end: $b) { slots { start } } }",
          { s: values.serviceId, a: values.start, b: values.end },
        )).availability.slots;
        if (free.length) values.slot = free[0].start;
      }
    } catch (e) { /* the examples still show; their variables need filling in */ }
    return JSON.stringify(values, null, 2);
  }
  function firstVisit() {
    try {
      return !window.localStorage.getItem("graphiql:tabState")
        && !window.localStorage.getItem("graphiql:query");
    } catch (e) { return true; }
  }

  function App(props) {
    const explorer = React.useMemo(function () {
      return GraphiQLPluginExplorer.explorerPlugin();
    }, []);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: EXAMPLES, // also what a new tab starts with
      query: url.searchParams.get("q") || undefined,
      variables: url.searchParams.get("variables") || props.variables,
      onEditQuery: onEditQuery,
      onEditHeaders: onEditHeaders,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    });
  }
  function render(variables) {
    ReactDOM.createRoot(document.getElementById("graphiql"))
      .render(React.createElement(App, { variables: variables }));
  }
  // Variables only on a first visit: GraphiQL would open a new tab for them otherwise.
  if (!url.searchParams.has("q") && firstVisit()) exampleVariables().then(render);
  else render(undefined);
})();
</script>
</body>
</html>
"""


_HTML = (
    _PAGE.replace("@CSP@", CSP)
    .replace("@STYLESHEETS@", "\n".join(f'<link rel="stylesheet" href="{u}">' for u in STYLESHEETS))
    .replace("@SCRIPTS@", "\n".join(f'<script src="{u}"></script>' for u in SCRIPTS))
    .replace("@EXAMPLES@", json.dumps(EXAMPLES).replace("</", "<\\/"))
)


def graphiql_html() -> str:
    """The GraphiQL page: every file it loads comes from /static/vendor/."""
    return _HTML
