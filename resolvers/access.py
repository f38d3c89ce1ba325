"""Who the viewer is to an organization or a staff member, as the types' field resolvers,
the root resolvers and the access rules (schema/access_rules.py) all ask it (through the
request's dataloaders)."""

from __future__ import annotations

import uuid

from domain.availability import records as av
from domain.users import records as us
from domain.users.records import MANAGERS
from schema.context import Context, Info


async def manages_staff(context: Context, staff: av.Staff) -> bool:
    """OWNER/ADMIN of the staff member's organization, or the staff member."""
    viewer = context.viewer_id
    if viewer is None:
        return False
    if staff.user_id == viewer:
        return True
    return await role_in(context, staff.organization_id) in MANAGERS


async def role_in(context: Context, org_id: uuid.UUID) -> us.Role | None:
    """The viewer's role in the organization; None: not a member (or nobody signed in)."""
    viewer = context.viewer_id
    if viewer is None:
        return None
    for m in await context.loaders.memberships.load(viewer) or []:
        if m.organization_id == org_id:
            return m.role
    return None


async def can_manage_staff(info: Info, staff: av.Staff) -> bool:
    """OWNER/ADMIN of the staff member's organization, or the staff member."""
    return await manages_staff(info.context, staff)


async def viewer_role(info: Info, org_id: uuid.UUID) -> us.Role | None:
    return await role_in(info.context, org_id)
