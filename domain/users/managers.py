"""Who runs an organization, for messages about it (a paused webhook endpoint)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.users.records import Role
from domain.users.tables import memberships, users


async def member_emails(
    conn: AsyncConnection, org_id: uuid.UUID, roles: Iterable[Role] = (Role.OWNER,)
) -> list[str]:
    """The e-mail addresses of the organization's members in `roles` (OWNERs unless
    told), sorted; members signed up by phone alone have none and are left out."""
    rows = await conn.execute(
        select(users.c.email)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(
            memberships.c.organization_id == org_id,
            memberships.c.role.in_([role.value for role in roles]),
            users.c.email.is_not(None),
        )
        .order_by(users.c.email)
    )
    return [email for (email,) in rows]
