"""An organization's settings: read by its OWNER/ADMIN, changed by them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.users import records as us
from domain.users import service as users
from resolvers.access import viewer_role
from resolvers.attempt import attempt, key
from schema.context import Info, forbidden
from schema.organization_settings import (
    OrganizationSettings,
    OrganizationSettingsPayload,
    UpdateOrganizationSettingsInput,
)


async def organization_settings(info: Info, org: us.Organization) -> OrganizationSettings:
    """`Organization.settings`: an anonymous viewer is UNAUTHENTICATED, anyone but the
    organization's OWNER/ADMIN FORBIDDEN."""
    info.context.require_viewer()
    if await viewer_role(info, org.id) not in us.MANAGERS:
        raise forbidden("Only the organization's owners and admins see its settings.")
    return OrganizationSettings.of(org.settings)


async def update_organization_settings(
    info: Info, input: UpdateOrganizationSettingsInput
) -> OrganizationSettingsPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> us.Organization:
        org_id = key(input.organization_id, "Organization", "input.organizationId")
        return await users.update_organization_settings(
            conn,
            viewer,
            org_id,
            hold_minutes=input.hold_minutes,
            free_cancellation_hours=input.free_cancellation_hours,
            late_cancellation_refund_percent=input.late_cancellation_refund_percent,
            reminder_minutes=input.reminder_minutes_before,
        )

    org, errors = await attempt(info, work)
    settings = OrganizationSettings.of(org.settings) if org else None
    return OrganizationSettingsPayload(settings=settings, errors=errors)
