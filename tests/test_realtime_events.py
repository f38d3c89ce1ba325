"""A booking that fails leaves no event: not in the outbox, not on the bus, not pushed.
The interesting failure is the one that already wrote its events: createBooking inserts
the booking, its first seat and its outbox rows in one statement, and only then may the
database refuse the seat (a racer took it first); the rollback must take the events with
it. In-process server, so that the test can also listen to the process's bus."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
import pytest

from domain import events
from domain.booking.slot_lock import UNGUARDED
from tests.booking_api import CREATE, create, key
from tests.business import Person, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import Answer, as_utc, codes, db_key, payloads, send
from tests.realtime_helpers import (
    PUSH,
    capacity,
    data_for,
    day_window,
    monday,
    nothing_for,
    query,
    until,
)
from tests.test_availability_api import local
from tests.ws_client import AVAILABILITY_CHANGED, socket

if TYPE_CHECKING:
    from realtime.hub import Hub


@contextlib.asynccontextmanager
async def bus_tap(hub: Hub) -> AsyncIterator[list[events.Event]]:
    """Every event the process's bus delivers while inside, in order."""
    seen: list[events.Event] = []
    async with hub.bus.broadcast.subscribe(hub.bus.channel) as subscriber:

        async def read() -> None:
            while True:
                message = await subscriber.get()
                if message.message:  # not RESYNC
                    seen.extend(events.decode(message.message))

        reader = asyncio.create_task(read())
        try:
            yield seen
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def outbox_of(database_url: str, org_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The organization's outbox rows, oldest first: (kind, payload)."""
    rows = await query(
        database_url,
        "SELECT payload::text AS payload FROM outbox"
        " WHERE payload->0->'payload'->>'organization_id' = $1 ORDER BY id",
        str(db_key(org_id, "Organization")),
    )
    found: list[tuple[str, dict[str, Any]]] = []
    for row in rows:  # one row per transaction, holding its events
        for event in orjson.loads(row["payload"]):
            found.append((event["kind"], event["payload"]))
    return found


async def bookings_of(database_url: str, org_id: str) -> set[uuid.UUID]:
    rows = await query(
        database_url,
        "SELECT id FROM bookings WHERE organization_id = $1",
        db_key(org_id, "Organization"),
    )
    return {r["id"] for r in rows}


async def outbox_ids_used(database_url: str) -> int:
    """How many outbox ids were ever drawn (rolled-back inserts draw them too)."""
    rows = await query(
        database_url,
        "SELECT last_value + (CASE WHEN is_called THEN 0 ELSE -1 END) AS used FROM outbox_id_seq",
    )
    return int(rows[0]["used"])


async def waiting_on_locks(database_url: str) -> int:
    rows = await query(
        database_url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query NOT LIKE 'DELETE FROM claims%'",
    )
    return len(rows)


def booking_request(service_id: str, start: str, staff_id: str | None) -> dict[str, Any]:
    return {
        "input": {
            "serviceId": service_id,
            "start": start,
            "staffId": staff_id,
            "idempotencyKey": key(),
        }
    }


async def race_on_a_locked_table(
    gql: GraphQLClient, database_url: str, requests: list[tuple[dict[str, Any], Person]]
) -> list[dict[str, Any]]:
    """Sends the requests while the test holds `claims` locked, once all of them wait
    on that lock (each past its rules check, at its first insert) lets them go."""
    blocker = await asyncpg.connect(database_url, timeout=10)
    sent: list[asyncio.Task[Answer]] = []
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE claims IN EXCLUSIVE MODE")
            for variables, person in requests:
                sent.append(asyncio.create_task(send(gql, CREATE, variables, person.token)))
                await until(
                    lambda: _at_least(database_url, len(sent)),
                    seconds=PUSH,
                )
    finally:
        if sent:
            await asyncio.wait(sent)
        await blocker.close()
    return payloads([t.result() for t in sent], "createBooking")


async def _at_least(database_url: str, count: int) -> bool:
    return await waiting_on_locks(database_url) >= count


class Unguarded:
    """A slot lock that always steps aside (as when Redis is down): PostgreSQL decides."""

    async def acquire(self, key: str) -> str | None:
        return UNGUARDED

    async def release(self, key: str, token: str) -> None:
        return None


# ---- the last seat of a group session, raced for -------------------------------------------


async def test_a_booking_refused_after_writing_its_events_leaves_none(
    gql: GraphQLClient, server: Server, database_url: str
) -> None:
    biz = await create_business(gql, service={"capacity": 2})
    staff = biz.staff_ids[0]
    first, second, third, late = [await sign_up(gql) for _ in range(4)]
    ten, eleven = local(monday(), 10), local(monday(), 11)
    hub: Hub = server.app_state.realtime
    async with socket(server.base_url) as ws, bus_tap(hub) as seen:
        await ws.init()
        sid = await ws.subscribe(
            AVAILABILITY_CHANGED,
            {"serviceId": biz.service_id, "staffId": staff, **day_window(monday())},
        )
        free = capacity(await data_for(ws, sid))
        assert free[as_utc(ten)] == 2
        made = await create(gql, first.token, serviceId=biz.service_id, start=ten, staffId=staff)
        assert made["errors"] == []
        assert capacity(await data_for(ws, sid, PUSH)) == {**free, as_utc(ten): 1}
        before = await outbox_of(database_url, biz.org_id)
        drawn = await outbox_ids_used(database_url)

        # Two customers for the last seat, both past the rules check (one seat is free)
        # before either writes: both insert their booking, seat and events; one seat
        # insert is refused and that whole transaction rolls back.
        results = await race_on_a_locked_table(
            gql,
            database_url,
            [
                (booking_request(biz.service_id, ten, staff), second),
                (booking_request(biz.service_id, ten, staff), third),
            ],
        )
        won = [r for r in results if r["errors"] == []]
        lost = [r for r in results if r["errors"] != []]
        assert len(won) == 1, [codes(r) for r in results]
        assert [codes(r) for r in lost] == [[("SLOT_UNAVAILABLE", "input.start")]]
        # The loser really had written its events (their row's id was drawn).
        assert await outbox_ids_used(database_url) - drawn >= 2
        assert len(await outbox_of(database_url, biz.org_id)) == len(before) + 2
        full = {k: v for k, v in free.items() if k != as_utc(ten)}
        assert capacity(await data_for(ws, sid, PUSH)) == full

        # Refused before anything was written, too: the session is full now; and an
        # idempotency key sent again with another input.
        refused = await create(gql, late.token, serviceId=biz.service_id, start=ten, staffId=staff)
        assert codes(refused) == [("SLOT_UNAVAILABLE", "input.start")]
        reused = key()
        ok = await create(
            gql, late.token, serviceId=biz.service_id, start=eleven, idempotencyKey=reused
        )
        assert ok["errors"] == []
        again = await create(
            gql,
            late.token,
            serviceId=biz.service_id,
            start=local(monday(), 12),
            idempotencyKey=reused,
        )
        assert [e["code"] for e in again["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]

        # The marker: the next push after the refusals is the successful booking's.
        assert capacity(await data_for(ws, sid, PUSH)) == {**full, as_utc(eleven): 1}
        await nothing_for(ws, 0.3)
        marker = db_key(ok["booking"]["id"], "Booking")
        await until(
            lambda: any(
                isinstance(e, events.BookingChanged) and e.booking_id == marker for e in seen
            )
        )

    # Exactly the three bookings made have events: in the outbox and on the bus.
    made_ids = await bookings_of(database_url, biz.org_id)
    assert made_ids == {
        db_key(made["booking"]["id"], "Booking"),
        db_key(won[0]["booking"]["id"], "Booking"),
        marker,
    }
    after = await outbox_of(database_url, biz.org_id)
    assert after[: len(before)] == before
    new = after[len(before) :]
    assert [kind for kind, _ in new] == ["booking_changed", "availability_changed"] * 2
    assert {uuid.UUID(p["booking_id"]) for k, p in new if k == "booking_changed"} == {
        db_key(won[0]["booking"]["id"], "Booking"),
        marker,
    }
    org = db_key(biz.org_id, "Organization")
    on_bus = [
        e.booking_id
        for e in seen
        if isinstance(e, events.BookingChanged) and e.organization_id == org
    ]
    assert sorted(on_bus) == sorted(made_ids)


# ---- any staff member: the first one refused inside a savepoint -----------------------------


async def test_a_staff_member_refused_inside_a_savepoint_leaves_no_event(
    gql: GraphQLClient,
    server: Server,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two customers at 10:00 with two staff members free: one names the first staff
    member, the other lets the server choose (which tries the first one too, then the
    next, each inside a savepoint). Whichever loses the first staff member, its events
    for them go with the rollback. The fast-path lock steps aside (as with Redis down),
    so both really reach the database."""
    # (State keeps its attributes in `_state`: setattr's undo would delete the original.)
    monkeypatch.setitem(server.app_state._state, "slot_lock", Unguarded())
    biz = await create_business(gql, staff_count=2)
    first_staff, _ = sorted(biz.staff_ids, key=lambda s: db_key(s, "Staff"))
    named, anyone = await sign_up(gql), await sign_up(gql)
    ten = local(monday(), 10)
    before = await outbox_of(database_url, biz.org_id)
    drawn = await outbox_ids_used(database_url)
    results = await race_on_a_locked_table(
        gql,
        database_url,
        [
            (booking_request(biz.service_id, ten, first_staff), named),
            (booking_request(biz.service_id, ten, None), anyone),
        ],
    )
    won = [r for r in results if r["errors"] == []]
    assert won, [codes(r) for r in results]
    for result in results:
        assert codes(result) in ([], [("SLOT_UNAVAILABLE", "input.start")])
    by_staff = {
        db_key(r["booking"]["id"], "Booking"): db_key(r["booking"]["staff"]["id"], "Staff")
        for r in won
    }
    assert len(set(by_staff.values())) == len(by_staff)  # nobody double-booked

    after = await outbox_of(database_url, biz.org_id)
    assert after[: len(before)] == before
    new = after[len(before) :]
    # Events were written for the first staff member and rolled back (ids drawn).
    assert await outbox_ids_used(database_url) - drawn >= len(won) + 1
    booked = [uuid.UUID(p["booking_id"]) for k, p in new if k == "booking_changed"]
    assert sorted(booked) == sorted(by_staff), new
    freed_or_taken = [
        [uuid.UUID(s) for s in p["staff_ids"]] for k, p in new if k == "availability_changed"
    ]
    assert sorted(freed_or_taken) == sorted([s] for s in by_staff.values()), new
    assert await bookings_of(database_url, biz.org_id) == set(by_staff)
