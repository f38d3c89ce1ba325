"""Domain events and the outbox they are written to.

A change records its events with `record()` in its own transaction: a rolled-back
change leaves none, a committed one leaves them for the outbox consumers (infra/relay.py),
which hands each one on once after the commit. The same rows are what later consumers
(e-mail and SMS notifications) read, so an event names what changed, not who wants to
know.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from infra import outbox
from infra.database import driver

CHANNEL = outbox.CHANNEL


@dataclass(frozen=True, slots=True)
class AvailabilityChanged:
    """Free time changed for these staff members (None: every staff member of the
    organization) and these services (None: every service they do), within
    [start, end) (None: without bound, as for a new weekly schedule). `until`: the
    change undoes itself then (a hold expiring), with no transaction to announce it."""

    organization_id: uuid.UUID
    staff_ids: tuple[uuid.UUID, ...] | None
    service_ids: tuple[uuid.UUID, ...] | None
    start: datetime | None
    end: datetime | None
    until: datetime | None = None

    kind = "availability_changed"

    def payload(self) -> dict[str, Any]:
        return {
            "organization_id": str(self.organization_id),
            "staff_ids": None if self.staff_ids is None else [str(s) for s in self.staff_ids],
            "service_ids": None if self.service_ids is None else [str(s) for s in self.service_ids],
            "start": _instant(self.start),
            "end": _instant(self.end),
            "until": _instant(self.until),
        }


@dataclass(frozen=True, slots=True)
class BookingChanged:
    """A booking was made or changed (status, time, staff member, payment)."""

    booking_id: uuid.UUID
    organization_id: uuid.UUID

    kind = "booking_changed"

    def payload(self) -> dict[str, Any]:
        return {"booking_id": str(self.booking_id), "organization_id": str(self.organization_id)}


@dataclass(frozen=True, slots=True)
class OrganizationChanged:
    """An organization's own row changed (its settings): every process forgets the
    copy it keeps (domain/kept.py)."""

    organization_id: uuid.UUID

    kind = "organization_changed"

    def payload(self) -> dict[str, Any]:
        return {"organization_id": str(self.organization_id)}


Event = AvailabilityChanged | BookingChanged | OrganizationChanged


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _ids(values: list[str] | None) -> tuple[uuid.UUID, ...] | None:
    return None if values is None else tuple(uuid.UUID(v) for v in values)


def event_of(kind: str, payload: dict[str, Any]) -> Event | None:
    """The event an outbox row holds; None for a kind this version does not know."""
    if kind == AvailabilityChanged.kind:
        return AvailabilityChanged(
            organization_id=uuid.UUID(payload["organization_id"]),
            staff_ids=_ids(payload["staff_ids"]),
            service_ids=_ids(payload["service_ids"]),
            start=_parse_instant(payload["start"]),
            end=_parse_instant(payload["end"]),
            until=_parse_instant(payload.get("until")),
        )
    if kind == BookingChanged.kind:
        return BookingChanged(
            booking_id=uuid.UUID(payload["booking_id"]),
            organization_id=uuid.UUID(payload["organization_id"]),
        )
    if kind == OrganizationChanged.kind:
        return OrganizationChanged(organization_id=uuid.UUID(payload["organization_id"]))
    return None


def encode(events: tuple[Event, ...] | list[Event]) -> bytes:
    """Events as one JSON array of {kind, payload}: the outbox's rows, the bus's messages."""
    return orjson.dumps([{"kind": e.kind, "payload": e.payload()} for e in events])


def decode(data: bytes | str) -> list[Event]:
    return events_of(orjson.loads(data))


def events_of(items: list[dict[str, Any]]) -> list[Event]:
    """The events of a decoded list of {kind, payload} (an outbox row's payload)."""
    found = (event_of(item["kind"], item["payload"]) for item in items)
    return [e for e in found if e is not None]


# The outbox's one writer (this module): one row per transaction, holding all its
# events (kind ROW_KIND, the payload the list of {kind, payload}), written in one
# statement; the NOTIFY is delivered only at commit.
ROW_KIND = outbox.ROW_KIND
NOTIFY = f"pg_notify('{outbox.CHANNEL}', '')"


def changed_bookings(rows: Iterable[outbox.Row]) -> set[uuid.UUID]:
    """The bookings the outbox rows' BookingChanged events name (an outbox consumer's
    usual first step)."""
    return {
        event.booking_id
        for row in rows
        if isinstance(row.payload, list)
        for event in events_of(row.payload)
        if isinstance(event, BookingChanged)
    }


def outbox_row(parameter: int) -> str:
    """The INSERT of a transaction's outbox row, its events the statement's parameter
    `$parameter`: `record` runs it, and a statement that writes its events itself in the
    same round trip (the booking insert) embeds it, selecting NOTIFY too."""
    return f"INSERT INTO outbox (kind, payload) VALUES ('{ROW_KIND}', ${parameter}::jsonb)"  # noqa: S608


RECORD = f"WITH written AS ({outbox_row(1)} RETURNING id) SELECT {NOTIFY} FROM written"  # noqa: S608


async def record(conn: AsyncConnection, *events: Event) -> None:
    """Writes the events in `conn`'s transaction (which must be one)."""
    if events:
        await (await driver(conn)).execute(RECORD, encode(events).decode())
        note(conn, *events)


_PENDING = "domain_events"
_COMMITTED = "committed_domain_events"


def note(conn: AsyncConnection, *events: Event) -> None:
    """Remembers events written to the outbox in `conn`'s transaction (by `record`, or
    by a statement of the caller's that writes the outbox itself) for `on_commit`."""
    conn.info.setdefault(_PENDING, []).extend(events)


def on_commit(engine: AsyncEngine, deliver: Callable[[list[Event]], None]) -> None:
    """Hands this process the events of each of its transactions once it has committed,
    so what it caches is forgotten before it answers again (read your writes). Every
    process, this one included, hears of them again through the relay, milliseconds
    later. A rolled-back transaction hands nothing.

    SQLAlchemy's `commit` event fires before the COMMIT is sent: the events are only
    set aside then, and handed over when the connection goes back to the pool, which
    is after the COMMIT succeeded (a failed one rolls back and drops them)."""

    def commit(conn: Connection) -> None:
        pending = conn.info.pop(_PENDING, None)
        if pending:
            conn.info.setdefault(_COMMITTED, []).extend(pending)

    def rollback(conn: Connection) -> None:
        if conn.invalidated:
            # Its connection is gone (the server went away): `conn.info` would raise
            # PendingRollbackError over the real error, and `checkin` tidies up anyway.
            return
        conn.info.pop(_PENDING, None)
        conn.info.pop(_COMMITTED, None)

    def checkin(dbapi_connection: object, record: ConnectionPoolEntry) -> None:
        committed = record.info.pop(_COMMITTED, None)
        record.info.pop(_PENDING, None)  # a connection closed mid-transaction
        if committed:
            deliver(committed)

    event.listen(engine.sync_engine, "commit", commit)
    event.listen(engine.sync_engine, "rollback", rollback)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
