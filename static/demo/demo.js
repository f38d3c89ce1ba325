// The live slot board: plain JavaScript, no build step. Availability arrives over
// graphql-transport-ws (the vendored graphql-ws client); bookings go over HTTP
// (booking.js: booking as a guest, paying, the booking watched live).
"use strict";

const params = new URLSearchParams(location.search);
const SLUG = params.get("business") || "demo-clinic";
const WS_URL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql";

const ORGANIZATION = `query($slug: String!) {
  organization(slug: $slug) {
    name timeZone
    services(first: 50) {
      edges { node { id name durationMinutes capacity price { amount currency } } }
    }
  }
}`;
const AVAILABILITY = `subscription($serviceId: ID!, $start: DateTime!, $end: DateTime!) {
  availabilityChanged(serviceId: $serviceId, start: $start, end: $end) {
    timeZone
    days { date slots { start end remainingCapacity } }
  }
}`;

const $ = (id) => document.getElementById(id);
const state = { org: null, services: new Map(), serviceId: null, weekOffset: 0,
                unsubscribe: null, shown: new Set(), version: 0, chosen: null };

async function graphql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && !body.data) throw new Error(body.errors[0].message);
  return body.data;
}

// ---- time in the business's zone ----------------------------------------------------

function zoneOffsetMs(instant, timeZone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(instant);
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return asUtc - instant.getTime();
}

function localMidnight(year, month, day, timeZone) {
  const guess = new Date(Date.UTC(year, month, day));
  return new Date(guess.getTime() - zoneOffsetMs(guess, timeZone));
}

function weekWindow(timeZone, weekOffset) {
  const now = new Date();
  const today = new Date(now.getTime() + zoneOffsetMs(now, timeZone)); // wall clock as UTC
  const mondayShift = (today.getUTCDay() + 6) % 7;
  const monday = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(),
                                   today.getUTCDate() - mondayShift + 7 * weekOffset));
  const start = localMidnight(monday.getUTCFullYear(), monday.getUTCMonth(), monday.getUTCDate(), timeZone);
  const end = localMidnight(monday.getUTCFullYear(), monday.getUTCMonth(), monday.getUTCDate() + 7, timeZone);
  return { start, end, monday };
}

function timeLabel(iso, timeZone) {
  return new Intl.DateTimeFormat(undefined, { timeZone, hour: "2-digit", minute: "2-digit" })
    .format(new Date(iso));
}

// Money.amount counts minor units (cents): the currency's own digits make it a price.
function money({ amount, currency }) {
  const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
  return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
}

function dayLabel(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" })
    .format(new Date(Date.UTC(y, m - 1, d)));
}

// ---- the board ----------------------------------------------------------------------

function render(availability) {
  const board = $("board");
  const before = state.shown;
  const now = new Set();
  board.replaceChildren();
  for (const day of availability.days) {
    const column = document.createElement("section");
    column.className = "day";
    column.dataset.date = day.date;
    const title = document.createElement("h2");
    title.textContent = dayLabel(day.date);
    column.append(title);
    if (!day.slots.length) {
      const none = document.createElement("p");
      none.className = "none";
      none.textContent = "No free time";
      column.append(none);
    }
    for (const slot of day.slots) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "slot";
      button.dataset.start = slot.start;
      button.textContent = timeLabel(slot.start, availability.timeZone) +
        (slot.remainingCapacity > 1 ? ` (${slot.remainingCapacity} left)` : "");
      if (before.size && !before.has(slot.start)) button.classList.add("appeared");
      button.addEventListener("click", () => choose(slot, day.date, availability.timeZone));
      column.append(button);
      now.add(slot.start);
    }
    board.append(column);
  }
  state.shown = now;
  state.version += 1;
  board.dataset.version = String(state.version);
  board.dataset.slots = String(now.size);
}

function setStatus(kind, text) {
  const status = $("status");
  status.className = "status " + kind;
  status.textContent = text;
}

// Connected only once the business is known: "live" then means its slots are.
let client = null;
function connect() {
  client = graphqlWs.createClient({
    url: WS_URL,
    lazy: false,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    on: {
      connected: () => setStatus("live", "live"),
      closed: () => setStatus("offline", "reconnecting…"),
      connecting: () => setStatus("connecting", "connecting…"),
    },
  });
}

function code(text) {
  const element = document.createElement("code");
  element.textContent = text;
  return element;
}

function notFound() {
  $("business").textContent = `No business "${SLUG}"`;
  setStatus("offline", "not found");
  $("notice").replaceChildren(
    `There is no business "${SLUG}" on this server. The demo clinic is created by `,
    code("make run"), ", or by ", code("python -m commands.seed"), " after ",
    code("alembic upgrade head"), ". Seed it, then reload this page.",
  );
  $("notice").hidden = false;
  for (const control of [$("service").closest("label"), $("previous"), $("next")]) {
    control.hidden = true;
  }
}

function watch() {
  if (state.unsubscribe) state.unsubscribe();
  const { start, end, monday } = weekWindow(state.org.timeZone, state.weekOffset);
  $("week").textContent = "week of " + dayLabel(monday.toISOString().slice(0, 10));
  state.shown = new Set();
  state.unsubscribe = client.subscribe(
    { query: AVAILABILITY,
      variables: { serviceId: state.serviceId, start: start.toISOString(), end: end.toISOString() } },
    {
      next: (result) => {
        if (result.data) render(result.data.availabilityChanged);
        else if (result.errors) setStatus("offline", result.errors[0].message);
      },
      error: (error) => setStatus("offline", String(error && error.message || error)),
      complete: () => {},
    },
  );
}

// ---- start --------------------------------------------------------------------------

async function start() {
  const data = await graphql(ORGANIZATION, { slug: SLUG });
  if (!data.organization) {
    notFound();
    return;
  }
  state.org = data.organization;
  $("business").textContent = state.org.name + " — live slot board";
  $("zone").textContent = "Times in " + state.org.timeZone;
  const select = $("service");
  for (const { node } of state.org.services.edges) {
    state.services.set(node.id, node);
    const option = document.createElement("option");
    option.value = node.id;
    option.textContent = `${node.name} (${node.durationMinutes} min, ` +
      (node.price ? money(node.price) : "free") + ")";
    select.append(option);
  }
  const wanted = params.get("service");
  state.serviceId = wanted && [...select.options].some((o) => o.value === wanted) ? wanted : select.value;
  select.value = state.serviceId;
  select.addEventListener("change", () => { state.serviceId = select.value; watch(); });
  $("previous").addEventListener("click", () => { state.weekOffset -= 1; watch(); });
  $("next").addEventListener("click", () => { state.weekOffset += 1; watch(); });
  if (params.get("week")) state.weekOffset = Number(params.get("week")) || 0;
  connect();
  watch();
}

start().catch((error) => setStatus("offline", String(error.message || error)));
