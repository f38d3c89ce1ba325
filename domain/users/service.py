"""The users domain's public API: identity, sessions, organizations and roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import events
from domain.errors import DomainError, ErrorCode, Problems
from domain.kept import KeptRecords
from domain.users.accounts import users_by_id as users_by_id
from domain.users.email_tokens import (
    request_email_verification as request_email_verification,
)
from domain.users.email_tokens import request_password_reset as request_password_reset
from domain.users.email_tokens import reset_password as reset_password
from domain.users.email_tokens import verify_email as verify_email
from domain.users.expired import forget_expired as forget_expired
from domain.users.managers import member_emails as member_emails
from domain.users.passwords import hash_password, password_problem, verify_password
from domain.users.records import MANAGERS, Membership, Organization, Role, Session, User
from domain.users.sessions import REFRESH_LIFETIME as REFRESH_LIFETIME
from domain.users.sessions import open_session as open_session
from domain.users.sessions import refresh_session as refresh_session
from domain.users.sessions import sign_out as sign_out
from domain.users.sessions import sign_out_everywhere as sign_out_everywhere
from domain.users.tables import invitations, memberships, organizations, users
from domain.users.tokens import TokenSigner
from domain.validation import is_currency, is_email, is_phone, is_slug, is_time_zone
from infra.database import driver
from infra.ids import uuid7


def _organization(row: RowMapping) -> Organization:
    return Organization(
        id=row["id"],
        name=row["name"],
        slug=row["slug"],
        time_zone=row["time_zone"],
        currency=row["currency"],
        hold_minutes=row["hold_minutes"],
        free_cancellation_hours=row["free_cancellation_hours"],
        late_cancellation_refund_percent=row["late_cancellation_refund_percent"],
        reminder_minutes=tuple(sorted(row["reminder_minutes"], reverse=True)),
    )


# ---- identity -----------------------------------------------------------------------------


def _check_name(problems: Problems, field: str, name: str | None) -> None:
    if name is not None and not name.strip():
        problems.add(field, "Enter a name.")
    elif name is not None and len(name) > 200:
        problems.add(field, "Use at most 200 characters.")


def _check_phone(problems: Problems, field: str, phone: str | None) -> None:
    if phone is not None and phone != "" and not is_phone(phone):
        problems.add(field, "Enter the phone number in international form, like +14155550123.")


async def sign_up(
    conn: AsyncConnection,
    signer: TokenSigner,
    email: str,
    password: str,
    name: str,
    phone: str | None,
) -> Session:
    email = email.strip().lower()
    problems = Problems()
    if not is_email(email):
        problems.add("input.email", "Enter a valid e-mail address.")
    if (why := password_problem(password)) is not None:
        problems.add("input.password", why)
    _check_name(problems, "input.name", name)
    _check_phone(problems, "input.phone", phone)
    problems.check()
    password_hash = await hash_password(password)
    user_id = await conn.scalar(
        pg_insert(users)
        .values(
            id=uuid7(),
            email=email,
            phone=phone or None,
            name=name.strip(),
            password_hash=password_hash,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(users.c.id)
    )
    if user_id is None:
        raise DomainError(
            ErrorCode.EMAIL_TAKEN, "An account with this e-mail exists already.", "input.email"
        )
    # Memberships waiting for this e-mail (addStaff before the person signed up) are
    # theirs once they verify it (email_tokens.verify_email), not before.
    return await open_session(conn, signer, user_id)


async def sign_in(conn: AsyncConnection, signer: TokenSigner, email: str, password: str) -> Session:
    row = (
        await conn.execute(
            select(users.c.id, users.c.password_hash).where(users.c.email == email.strip().lower())
        )
    ).first()
    if not await verify_password(row.password_hash if row else None, password) or row is None:
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, "The e-mail or password is wrong.")
    return await open_session(conn, signer, row.id)


async def update_profile(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    name: str | None,
    phone: str | None,
    time_zone: str | None = None,
) -> User:
    problems = Problems()
    _check_name(problems, "input.name", name)
    _check_phone(problems, "input.phone", phone)
    if time_zone and not is_time_zone(time_zone):
        problems.add("input.timeZone", "Use an IANA time zone name, like 'Europe/Berlin'.")
    problems.check()
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = name.strip()
    if phone is not None:
        values["phone"] = phone or None  # "" clears the number
    if time_zone is not None:
        values["time_zone"] = time_zone or None  # "" goes back to the organization's
    if values:
        await conn.execute(update(users).where(users.c.id == user_id).values(**values))
    return (await users_by_id(conn, [user_id]))[user_id]


async def user_ids_by_email(conn: AsyncConnection, email: str) -> uuid.UUID | None:
    return await conn.scalar(select(users.c.id).where(users.c.email == email.strip().lower()))


# ---- organizations and roles --------------------------------------------------------------


async def create_organization(
    conn: AsyncConnection,
    owner_id: uuid.UUID,
    name: str,
    slug: str,
    time_zone: str,
    currency: str,
) -> Organization:
    problems = Problems()
    _check_name(problems, "input.name", name)
    if not is_slug(slug):
        problems.add(
            "input.slug",
            "Use 3 to 63 lower-case letters, digits and single hyphens, like 'city-clinic'.",
        )
    if not is_time_zone(time_zone):
        problems.add("input.timeZone", "Use an IANA time zone name, like 'Europe/Berlin'.")
    if not is_currency(currency):
        problems.add("input.currency", "Use an ISO 4217 currency code, like 'EUR'.")
    problems.check()
    org_id = await conn.scalar(
        pg_insert(organizations)
        .values(id=uuid7(), name=name.strip(), slug=slug, time_zone=time_zone, currency=currency)
        .on_conflict_do_nothing(index_elements=["slug"])
        .returning(organizations.c.id)
    )
    if org_id is None:
        raise DomainError(
            ErrorCode.SLUG_TAKEN, "This address is taken; choose another.", "input.slug"
        )
    await conn.execute(
        insert(memberships).values(organization_id=org_id, user_id=owner_id, role=Role.OWNER.value)
    )
    return (await organizations_by_id(conn, [org_id]))[org_id]


async def organizations_by_id(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Organization]:
    rows = await (await driver(conn)).fetch(
        "SELECT * FROM organizations WHERE id = ANY($1::uuid[])", list(ids)
    )
    return {row["id"]: _organization(row) for row in rows}


_ORGANIZATIONS: KeptRecords[uuid.UUID, Organization] = KeptRecords(seconds=60, most=10_000)


async def organization_by_id(conn: AsyncConnection, org_id: uuid.UUID) -> Organization | None:
    """One organization, kept in memory a minute; forgotten at once in every process
    when it changes (`forget_changed`, domain/kept.py)."""

    async def load(key: uuid.UUID) -> Organization | None:
        return (await organizations_by_id(conn, [key])).get(key)

    return await _ORGANIZATIONS.get_or_load(org_id, load)


def forget_organization(org_id: uuid.UUID) -> None:
    """Drops this process's kept copy of the organization: the next read loads it."""
    _ORGANIZATIONS.forget(org_id)


def forget_organizations() -> None:
    """Drops every kept organization (the bus was down: changes may have been missed)."""
    _ORGANIZATIONS.forget_all()


def forget_changed(batch: Iterable[events.Event]) -> None:
    """Forgets the kept organizations that `batch` says changed. Every process calls it
    with each batch of events: its own transactions' at their commit
    (`events.on_commit`, app.py) and everyone's through the bus (realtime/hub.py)."""
    for event in batch:
        if isinstance(event, events.OrganizationChanged):
            forget_organization(event.organization_id)


# Each setting's allowed values, as the database's check constraints have them
# (migrations/versions/0007_organization_settings.py).
HOLD_MINUTES = range(1, 121)
FREE_CANCELLATION_HOURS = range(0, 721)
LATE_CANCELLATION_REFUND_PERCENT = range(0, 101)
REMINDER_MINUTES = range(10, 10081)  # 10 minutes to a week ahead
MAX_REMINDERS = 3


def _check_range(
    problems: Problems, field: str, value: int | None, allowed: range, unit: str
) -> None:
    if value is not None and value not in allowed:
        problems.add(field, f"Use {allowed.start} to {allowed.stop - 1} {unit}.")


async def update_organization_settings(
    conn: AsyncConnection,
    viewer_id: uuid.UUID,
    organization_id: uuid.UUID,
    hold_minutes: int | None = None,
    free_cancellation_hours: int | None = None,
    late_cancellation_refund_percent: int | None = None,
    reminder_minutes: Sequence[int] | None = None,
) -> Organization:
    """Changes the settings given (None: unchanged), OWNER/ADMIN only, every bad value
    reported at once. In `conn`'s transaction it records `OrganizationChanged`, so
    every process forgets the organization it keeps once this commits."""
    org = (await organizations_by_id(conn, [organization_id])).get(organization_id)
    if org is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such organization.", "input.organizationId")
    await require_manager(conn, viewer_id, organization_id)
    problems = Problems()
    _check_range(problems, "input.holdMinutes", hold_minutes, HOLD_MINUTES, "minutes")
    _check_range(
        problems,
        "input.freeCancellationHours",
        free_cancellation_hours,
        FREE_CANCELLATION_HOURS,
        "hours",
    )
    _check_range(
        problems,
        "input.lateCancellationRefundPercent",
        late_cancellation_refund_percent,
        LATE_CANCELLATION_REFUND_PERCENT,
        "percent",
    )
    reminders = None if reminder_minutes is None else sorted(set(reminder_minutes), reverse=True)
    if reminders is not None and (
        len(reminders) > MAX_REMINDERS or any(m not in REMINDER_MINUTES for m in reminders)
    ):
        problems.add(
            "input.reminderMinutesBefore",
            f"Give at most {MAX_REMINDERS} reminders, each 10 to 10080 minutes (a week) ahead.",
        )
    problems.check()
    values: dict[str, object] = {
        name: value
        for name, value in (
            ("hold_minutes", hold_minutes),
            ("free_cancellation_hours", free_cancellation_hours),
            ("late_cancellation_refund_percent", late_cancellation_refund_percent),
            ("reminder_minutes", reminders),
        )
        if value is not None
    }
    if not values:
        return org
    row = (
        (
            await conn.execute(
                update(organizations)
                .where(organizations.c.id == organization_id)
                .values(**values)
                .returning(*organizations.c)
            )
        )
        .mappings()
        .one()
    )
    await events.record(conn, events.OrganizationChanged(organization_id))
    return _organization(row)


async def reminder_leads_in_use(conn: AsyncConnection) -> list[int]:
    """Every reminder lead (minutes) some organization has set."""
    rows = await (await driver(conn)).fetch(
        "SELECT DISTINCT unnest(reminder_minutes) AS lead FROM organizations"
    )
    return sorted((row["lead"] for row in rows), reverse=True)


async def organization_by_slug(conn: AsyncConnection, slug: str) -> Organization | None:
    return (await organizations_by_slug(conn, [slug])).get(slug)


async def organizations_by_slug(
    conn: AsyncConnection, slugs: Sequence[str]
) -> dict[str, Organization]:
    rows = await conn.execute(select(organizations).where(organizations.c.slug.in_(list(slugs))))
    return {r["slug"]: _organization(r) for r in rows.mappings()}


async def memberships_of_users(
    conn: AsyncConnection, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Membership]]:
    rows = await conn.execute(
        select(memberships)
        .where(memberships.c.user_id.in_(list(user_ids)))
        .order_by(memberships.c.user_id, memberships.c.organization_id)
    )
    out: dict[uuid.UUID, list[Membership]] = {u: [] for u in user_ids}
    for org_id, user_id, role in rows:
        out[user_id].append(Membership(org_id, user_id, Role(role)))
    return out


async def role_in(conn: AsyncConnection, user_id: uuid.UUID, org_id: uuid.UUID) -> Role | None:
    role = await conn.scalar(
        select(memberships.c.role).where(
            memberships.c.user_id == user_id, memberships.c.organization_id == org_id
        )
    )
    return Role(role) if role else None


async def require_manager(conn: AsyncConnection, user_id: uuid.UUID, org_id: uuid.UUID) -> Role:
    """OWNER or ADMIN of the organization, or FORBIDDEN."""
    role = await role_in(conn, user_id, org_id)
    if role not in MANAGERS:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Only the organization's owners and admins may do this."
        )
    assert role is not None
    return role


async def invite(
    conn: AsyncConnection, org_id: uuid.UUID, email: str, role: Role
) -> uuid.UUID | None:
    """Gives the user with `email` the role now if they have verified that address, or
    else once they verify it (email_tokens.verify_email): an account someone opened
    with another person's address gets nothing. Returns the user's id when linked now.
    An existing higher role is kept."""
    email = email.strip().lower()
    user_id: uuid.UUID | None = await conn.scalar(
        select(users.c.id).where(users.c.email == email, users.c.email_verified)
    )
    if user_id is None:
        await conn.execute(
            pg_insert(invitations)
            .values(organization_id=org_id, email=email, role=role.value)
            .on_conflict_do_nothing()
        )
        return None
    await conn.execute(
        pg_insert(memberships)
        .values(organization_id=org_id, user_id=user_id, role=role.value)
        .on_conflict_do_nothing()
    )
    return user_id
