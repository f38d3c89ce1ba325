"""An organization's settings: read and changed by its OWNER/ADMIN only, each value within
its range (the API says which are wrong, PostgreSQL refuses them whatever writes them),
and a change reaching every process's kept organization at once: the next hold, on this
process or another, lasts the new hold time."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config

from domain import events
from domain.kept import KeptRecords
from domain.users import service as users
from domain.users.records import Organization
from infra.settings import ROOT
from tests.booking_api import HOLD
from tests.business import ADD_STAFF, Business, Person, create_business, payload, sign_up
from tests.conftest import ADMIN_URL, GraphQLClient, Server, _admin, with_database
from tests.processes import (
    REDIS_PREFIX,
    Apps,
    forget_keys,
    own_database,
    running_apps,
    shared_redis,
)
from tests.race_helpers import codes, db_key
from tests.test_availability_api import local, next_weekday

UPDATE = """
mutation($input: UpdateOrganizationSettingsInput!) {
  updateOrganizationSettings(input: $input) {
    settings { holdMinutes freeCancellationHours lateCancellationRefundPercent }
    errors { code field message }
  }
}"""

READ = """
query($slug: String!) {
  organization(slug: $slug) {
    id settings { holdMinutes freeCancellationHours lateCancellationRefundPercent }
  }
}"""

DEFAULTS = {"holdMinutes": 15, "freeCancellationHours": 24, "lateCancellationRefundPercent": 0}


async def settings_of(gql: GraphQLClient, biz: Business) -> dict[str, int]:
    data = await gql.data(READ, {"slug": biz.slug}, biz.owner.token)
    found: dict[str, int] = data["organization"]["settings"]
    return found


async def update(
    gql: GraphQLClient, token: str | None, org_id: str, **values: int | None
) -> dict[str, Any]:
    data = await gql.data(UPDATE, {"input": {"organizationId": org_id, **values}}, token)
    result: dict[str, Any] = data["updateOrganizationSettings"]
    return result


async def member(database_url: str, biz: Business, person: Person, role: str) -> None:
    """`person` becomes `role` of the business (no API gives ADMIN yet)."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)",
            db_key(biz.org_id, "Organization"),
            db_key(person.user_id, "User"),
            role,
        )
    finally:
        await conn.close()


# ---- reading and changing -----------------------------------------------------------------


async def test_a_new_organization_has_the_default_settings(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    assert await settings_of(gql, biz) == DEFAULTS


async def test_owner_and_admin_change_what_they_give_and_nothing_else(
    gql: GraphQLClient, database_url: str
) -> None:
    biz = await create_business(gql)
    changed = await update(gql, biz.owner.token, biz.org_id, holdMinutes=30)
    assert changed == {"settings": {**DEFAULTS, "holdMinutes": 30}, "errors": []}
    admin = await sign_up(gql)
    await member(database_url, biz, admin, "ADMIN")
    assert (await gql.data(READ, {"slug": biz.slug}, admin.token))["organization"]["settings"] == {
        **DEFAULTS,
        "holdMinutes": 30,
    }
    changed = await update(
        gql,
        admin.token,
        biz.org_id,
        freeCancellationHours=48,
        lateCancellationRefundPercent=50,
    )
    expected = {"holdMinutes": 30, "freeCancellationHours": 48, "lateCancellationRefundPercent": 50}
    assert changed == {"settings": expected, "errors": []}
    assert await settings_of(gql, biz) == expected
    # The ends of each range are allowed; nothing given changes nothing.
    edges = {"holdMinutes": 120, "freeCancellationHours": 720, "lateCancellationRefundPercent": 100}
    assert (await update(gql, biz.owner.token, biz.org_id, **edges))["settings"] == edges
    low = {"holdMinutes": 1, "freeCancellationHours": 0, "lateCancellationRefundPercent": 0}
    assert (await update(gql, biz.owner.token, biz.org_id, **low))["settings"] == low
    assert (await update(gql, biz.owner.token, biz.org_id))["settings"] == low
    assert await settings_of(gql, biz) == low


async def test_out_of_range_values_are_each_named_and_change_nothing(gql: GraphQLClient) -> None:
    biz = await create_business(gql)
    for values, fields in [
        (
            {"holdMinutes": 0, "freeCancellationHours": 721, "lateCancellationRefundPercent": 101},
            [
                "input.holdMinutes",
                "input.freeCancellationHours",
                "input.lateCancellationRefundPercent",
            ],
        ),
        (
            {"holdMinutes": 121, "freeCancellationHours": -1, "lateCancellationRefundPercent": -1},
            [
                "input.holdMinutes",
                "input.freeCancellationHours",
                "input.lateCancellationRefundPercent",
            ],
        ),
        # One bad value refuses the good ones beside it.
        (
            {"holdMinutes": 30, "lateCancellationRefundPercent": 150},
            ["input.lateCancellationRefundPercent"],
        ),
    ]:
        refused = await update(gql, biz.owner.token, biz.org_id, **values)
        assert refused["settings"] is None
        assert codes(refused) == [("INVALID_INPUT", f) for f in fields], refused
        assert all(e["message"] for e in refused["errors"])
    assert await settings_of(gql, biz) == DEFAULTS


async def test_staff_strangers_and_anonymous_may_not_read_or_change_them(
    gql: GraphQLClient, unique: str
) -> None:
    biz = await create_business(gql)
    staff = await sign_up(gql, email=f"staff-{unique}@example.com", verified=True)
    await payload(
        gql,
        ADD_STAFF,
        {"organizationId": biz.org_id, "name": "Pat", "email": staff.email},
        biz.owner.token,
        "addStaff",
    )
    stranger = await sign_up(gql)
    for person in (staff, stranger):
        refused = await update(gql, person.token, biz.org_id, holdMinutes=5)
        assert refused["settings"] is None
        assert codes(refused) == [("FORBIDDEN", None)]
        body = await gql.raw(READ, {"slug": biz.slug}, person.token)
        assert body["data"] == {"organization": None}  # settings is non-null
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
        assert body["errors"][0]["path"] == ["organization", "settings"]
    anonymous = await gql.raw(UPDATE, {"input": {"organizationId": biz.org_id, "holdMinutes": 5}})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    anonymous = await gql.raw(READ, {"slug": biz.slug})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The organization's public fields stay public.
    public = await gql.data(
        "query($s: String!) { organization(slug: $s) { slug } }", {"s": biz.slug}
    )
    assert public == {"organization": {"slug": biz.slug}}
    unknown = await update(gql, biz.owner.token, "bm9wZQ", holdMinutes=5)
    assert codes(unknown) == [("NOT_FOUND", "input.organizationId")]
    assert await settings_of(gql, biz) == DEFAULTS


async def test_the_database_refuses_out_of_range_settings(
    gql: GraphQLClient, database_url: str
) -> None:
    biz = await create_business(gql)
    org_id = db_key(biz.org_id, "Organization")
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        for column, value in [
            ("hold_minutes", 0),
            ("hold_minutes", 121),
            ("free_cancellation_hours", -1),
            ("free_cancellation_hours", 721),
            ("late_cancellation_refund_percent", -1),
            ("late_cancellation_refund_percent", 101),
        ]:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    f"UPDATE organizations SET {column} = $2 WHERE id = $1",
                    org_id,
                    value,
                )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO organizations (id, name, slug, time_zone, currency, hold_minutes)"
                " VALUES ($1, 'X', $2, 'UTC', 'EUR', 500)",
                uuid.uuid4(),
                f"x-{uuid.uuid4().hex[:10]}",
            )
        row = await conn.fetchrow(
            "SELECT hold_minutes, free_cancellation_hours, late_cancellation_refund_percent"
            " FROM organizations WHERE id = $1",
            org_id,
        )
        assert tuple(row) == (15, 24, 0)
    finally:
        await conn.close()


def to_revision(url: str, revision: str, down: bool = False) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    (command.downgrade if down else command.upgrade)(config, revision)


async def constraints_and_columns(conn: asyncpg.Connection) -> tuple[set[str], set[str]]:
    checks = await conn.fetch(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'organizations'::regclass AND contype = 'c'"
    )
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'organizations'"
    )
    return {r["conname"] for r in checks}, {r["column_name"] for r in columns}


async def test_the_migration_goes_down_and_up_again() -> None:
    """0007 undone leaves the organizations of 0006 (their rows kept), and done again
    gives every organization the defaults. On a database of its own, migrated to 0007
    alone (whatever later revisions do)."""
    name = f"booking_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(ADMIN_URL, name)
        await asyncio.to_thread(to_revision, url, "0007")
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(
                "INSERT INTO organizations (id, name, slug, time_zone, currency, hold_minutes)"
                " VALUES ($1, 'X', 'migrated', 'UTC', 'EUR', 20)",
                uuid.uuid4(),
            )
            await asyncio.to_thread(to_revision, url, "0006", down=True)
            checks, columns = await constraints_and_columns(conn)
            assert "ck_organizations_hold_positive" in checks
            assert not any(c.endswith("_range") for c in checks), checks
            assert "free_cancellation_hours" not in columns
            assert "late_cancellation_refund_percent" not in columns
            await asyncio.to_thread(to_revision, url, "0007")
            checks, columns = await constraints_and_columns(conn)
            assert "ck_organizations_hold_positive" not in checks
            assert {
                "ck_organizations_hold_minutes_range",
                "ck_organizations_free_cancellation_hours_range",
                "ck_organizations_late_cancellation_refund_percent_range",
            } <= checks
            row = await conn.fetchrow(
                "SELECT hold_minutes, free_cancellation_hours, late_cancellation_refund_percent"
                " FROM organizations WHERE slug = 'migrated'"
            )
            assert tuple(row) == (20, 24, 0)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# ---- the hold time, at once ---------------------------------------------------------------

ONE_SECOND = timedelta(seconds=1)


async def hold_lasts(gql: GraphQLClient, person: Person, biz: Business, slot: int) -> timedelta:
    """Holds Monday's `slot`-th half hour from 09:00: how long the hold lasts, to the
    minute (the time around the request, give or take the answer's whole seconds)."""
    start = local(next_weekday(0), 9 + slot // 2, 30 * (slot % 2))
    before = datetime.now(UTC)
    held = await gql.data(
        HOLD, {"input": {"serviceId": biz.service_id, "start": start}}, person.token
    )
    after = datetime.now(UTC)
    assert held["holdSlot"]["errors"] == [], held
    expires = datetime.fromisoformat(held["holdSlot"]["hold"]["expiresAt"])
    lasts = timedelta(minutes=round((expires - before) / timedelta(minutes=1)))
    assert before + lasts - ONE_SECOND <= expires <= after + lasts + ONE_SECOND, (before, expires)
    return lasts


@pytest.fixture
def organization_hold_time(server: Server) -> Iterator[None]:
    """Holds last the organization's hold time, whatever BOOKING_HOLD_SECONDS says."""
    before = server.app_state.policy
    server.app_state.policy = replace(server.app_state.policy, hold_seconds=None)
    try:
        yield
    finally:
        server.app_state.policy = before


@pytest.mark.usefixtures("organization_hold_time")
async def test_the_next_hold_lasts_the_new_hold_time(gql: GraphQLClient) -> None:
    """The process keeps the organization it read for the first hold; the change it
    commits makes it forget it before it answers again."""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    assert await hold_lasts(gql, customer, biz, 0) == timedelta(minutes=15)
    assert (await update(gql, biz.owner.token, biz.org_id, holdMinutes=7))["errors"] == []
    assert await hold_lasts(gql, customer, biz, 1) == timedelta(minutes=7)
    assert (await update(gql, biz.owner.token, biz.org_id, holdMinutes=90))["errors"] == []
    assert await hold_lasts(gql, customer, biz, 2) == timedelta(minutes=90)
    # A refused change forgets nothing and changes nothing.
    assert codes(await update(gql, biz.owner.token, biz.org_id, holdMinutes=0)) == [
        ("INVALID_INPUT", "input.holdMinutes")
    ]
    assert await hold_lasts(gql, customer, biz, 3) == timedelta(minutes=90)


@contextlib.asynccontextmanager
async def two_processes() -> AsyncIterator[tuple[str, Apps]]:
    """Two `uvicorn app:app` processes on a database of their own (no other process's
    relay takes their events) and the shared Redis; BOOKING_HOLD_SECONDS is not passed
    on (tests/processes.py), so holds last the organization's hold time."""
    async with contextlib.AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(own_database())
        redis_url = await stack.enter_async_context(shared_redis())
        stack.push_async_callback(forget_keys, redis_url, REDIS_PREFIX)
        apps = await stack.enter_async_context(
            running_apps(database_url, count=2, redis_url=redis_url)
        )
        yield database_url, apps


async def test_a_change_on_one_process_reaches_the_other_at_once() -> None:
    async with two_processes() as (database_url, apps), apps.clients() as [on_a, on_b]:
        try:
            biz = await create_business(on_a)
            customer = await sign_up(on_a)
            # B reads the organization for a hold, and keeps it.
            assert await hold_lasts(on_b, customer, biz, 0) == timedelta(minutes=15)
            # A change that records no event (written behind the app's back) is not
            # seen by B: it keeps what it read.
            conn = await asyncpg.connect(database_url, timeout=10)
            try:
                await conn.execute(
                    "UPDATE organizations SET hold_minutes = 30 WHERE id = $1",
                    db_key(biz.org_id, "Organization"),
                )
            finally:
                await conn.close()
            assert await hold_lasts(on_b, customer, biz, 1) == timedelta(minutes=15)

            # The change made on A reaches B through the outbox relay and the bus: the
            # next hold there lasts the new time (not a minute later, when B's copy
            # would expire by itself).
            changed = await update(on_a, biz.owner.token, biz.org_id, holdMinutes=7)
            assert changed["settings"]["holdMinutes"] == 7, changed
            began = time.monotonic()
            slot = 2
            while (lasts := await hold_lasts(on_b, customer, biz, slot)) != timedelta(minutes=7):
                assert lasts == timedelta(minutes=15)
                assert time.monotonic() - began < 5, "B still holds for 15 minutes"
                slot += 1
                await asyncio.sleep(0.05)
            # And on A, which committed it, at once.
            assert await hold_lasts(on_a, customer, biz, slot + 1) == timedelta(minutes=7)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{apps.logs()}") from error
        logs = apps.logs()
        assert "Traceback" not in logs, logs


# ---- the parts ----------------------------------------------------------------------------


def test_organization_changed_crosses_the_outbox_and_the_bus() -> None:
    org_id = uuid.uuid4()
    assert events.decode(events.encode([events.OrganizationChanged(org_id)])) == [
        events.OrganizationChanged(org_id)
    ]


def organization(org_id: uuid.UUID, hold_minutes: int) -> Organization:
    return Organization(org_id, "X", f"x-{org_id.hex[:8]}", "UTC", "EUR", hold_minutes)


async def test_forget_changed_forgets_the_organizations_a_batch_names() -> None:
    changed, other = uuid.uuid4(), uuid.uuid4()
    loads: list[uuid.UUID] = []

    async def load(org_id: uuid.UUID) -> Organization:
        loads.append(org_id)
        return organization(org_id, 15)

    kept = users._ORGANIZATIONS
    for org_id in (changed, other):
        await kept.get_or_load(org_id, load)
    users.forget_changed(
        [
            events.BookingChanged(uuid.uuid4(), other),
            events.AvailabilityChanged(other, None, None, None, None),
            events.OrganizationChanged(changed),
        ]
    )
    assert kept.get(changed) is None
    assert kept.get(other) is not None
    users.forget_organizations()
    assert kept.get(other) is None


async def test_a_record_loaded_while_something_was_forgotten_is_not_kept() -> None:
    """The load may have read the row as it was before the change that was forgotten."""
    kept: KeptRecords[uuid.UUID, Organization] = KeptRecords(seconds=60, most=10)
    org_id = uuid.uuid4()

    async def load_during_a_change(key: uuid.UUID) -> Organization:
        kept.forget(key)  # the change's event arrives while the old row is on its way
        return organization(key, 15)

    assert (await kept.get_or_load(org_id, load_during_a_change)) is not None
    assert kept.get(org_id) is None

    async def load(key: uuid.UUID) -> Organization:
        return organization(key, 7)

    await kept.get_or_load(org_id, load)
    found = kept.get(org_id)
    assert found is not None
    assert found.hold_minutes == 7
