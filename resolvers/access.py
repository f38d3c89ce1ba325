"""Who the viewer is to an organization or a staff member, as the types' field resolvers
and the root resolvers both ask it (through the request's dataloaders)."""

from __future__ import annotations

import uuid

from domain.availability import records as av
from domain.users import records as us
from domain.users.records import MANAGERS
from schema.context import Info


async def can_manage_staff(info: Info, staff: av.Staff) -> bool:
    """OWNER/ADMIN of the staff member's organization, or the staff member."""
    viewer = info.context.viewer_id
    if viewer is None:
        return False
    if staff.user_id == viewer:
        return True
    memberships = await info.context.loaders.memberships.load(viewer) or []
    return any(
        m.organization_id == staff.organization_id and m.role in MANAGERS for m in memberships
    )


async def viewer_role(info: Info, org_id: uuid.UUID) -> us.Role | None:
    viewer = info.context.viewer_id
    if viewer is None:
        return None
    for m in await info.context.loaders.memberships.load(viewer) or []:
        if m.organization_id == org_id:
            return m.role
    return None
