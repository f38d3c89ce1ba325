"""Demo data: one business to try everything on. Idempotent: a second run changes nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.availability import service as availability
from domain.availability.records import WorkingHours
from domain.users import service as users
from domain.users.records import Role
from domain.users.signing_keys import keys_for
from domain.users.tokens import TokenSigner
from infra.settings import Settings

OWNER_EMAIL = "owner@demo-clinic.test"
OWNER_PASSWORD = "demo-owner-2026"  # noqa: S105 - the demo account, printed by make run
SLUG = "demo-clinic"
ZONE = "Europe/Berlin"


@dataclass(frozen=True, slots=True)
class Demo:
    slug: str
    owner_email: str
    owner_password: str
    created: bool
    time_zone: str = ZONE


def _next_christmas(today: date) -> date:
    christmas = date(today.year, 12, 25)
    return christmas if christmas >= today else date(today.year + 1, 12, 25)


async def seed(engine: AsyncEngine, settings: Settings) -> Demo:
    # Before the transaction: it takes a connection of its own.
    keys = await keys_for(engine, settings.jwt_secret, 60)
    async with engine.begin() as conn:
        if await users.organization_by_slug(conn, SLUG) is not None:
            return Demo(SLUG, OWNER_EMAIL, OWNER_PASSWORD, created=False)
        signer = TokenSigner(keys, settings.jwt_issuer, settings.jwt_audience, 60)
        owner_id = await users.user_ids_by_email(conn, OWNER_EMAIL)
        if owner_id is None:
            session = await users.sign_up(
                conn, signer, OWNER_EMAIL, OWNER_PASSWORD, "Dana Demo", None
            )
            owner_id = session.user.id
        org = await users.create_organization(conn, owner_id, "Demo Clinic", SLUG, ZONE, "EUR")

        def draft(
            name: str, minutes: int, price: int, capacity: int, about: str
        ) -> availability.ServiceDraft:
            return availability.ServiceDraft(
                name=name,
                description=about,
                duration_minutes=minutes,
                buffer_before_minutes=0,
                buffer_after_minutes=10 if capacity == 1 else 0,
                slot_interval_minutes=None if capacity > 1 else 30,
                min_notice_minutes=60,
                max_advance_days=60,
                capacity=capacity,
                price_amount=price,
                requires_confirmation=False,
            )

        consult = await availability.create_service(
            conn, org.id, draft("First consultation", 30, 0, 1, "A free 30-minute talk."), []
        )
        massage = await availability.create_service(
            conn, org.id, draft("Sports massage", 60, 6500, 1, "60 minutes, paid online."), []
        )
        yoga = await availability.create_service(
            conn, org.id, draft("Back-care class", 60, 1500, 6, "A group class for six."), []
        )
        people = [
            ("Alex Weber", "alex@demo-clinic.test", [consult.id, massage.id]),
            ("Sam Novak", "sam@demo-clinic.test", [consult.id, massage.id]),
            ("Kim Yilmaz", "kim@demo-clinic.test", [yoga.id, consult.id]),
        ]
        week = [
            WorkingHours(day, start, end)
            for day in range(5)
            for start, end in ((time(9), time(12, 30)), (time(13, 30), time(17)))
        ]
        for name, email, service_ids in people:
            user_id = await users.invite(conn, org.id, email, Role.STAFF)
            member = await availability.add_staff(
                conn, org.id, org.time_zone, name, email, None, list(service_ids), user_id
            )
            await availability.set_weekly_schedule(conn, member, week)
        holiday = _next_christmas(datetime.now(UTC).date())
        zone = ZoneInfo(ZONE)
        await availability.add_time_off(
            conn,
            org.id,
            None,
            datetime.combine(holiday, time(0), zone),
            datetime.combine(holiday + timedelta(days=1), time(0), zone),
            "Christmas Day (public holiday)",
        )
    return Demo(SLUG, OWNER_EMAIL, OWNER_PASSWORD, created=True)


async def seed_url(url: str, settings: Settings) -> Demo:
    """`seed` on the database at the libpq `url` (migrated: `alembic upgrade head`)."""
    from infra.database import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        return await seed(engine, settings)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    # `python -m commands.seed`: the demo business on DATABASE_URL (or the embedded server).
    from infra.database import libpq_url

    settings = Settings.from_env()
    demo = asyncio.run(seed_url(libpq_url(settings), settings))
    print(f"demo business {demo.slug}: {'created now' if demo.created else 'kept from before'}")
    print(f"owner sign-in: {demo.owner_email} / {demo.owner_password}")
