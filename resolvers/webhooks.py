"""Organization webhooks: listed, created, deleted, resumed and redelivered by the
organization's OWNER/ADMIN (the domain decides; NOT_FOUND or FORBIDDEN in the payload)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.notifications import webhooks
from domain.users import records as us
from resolvers.access import viewer_role
from resolvers.attempt import attempt, key
from schema.context import Info, forbidden
from schema.webhooks import CreateWebhookEndpointInput, WebhookEndpoint, WebhookEndpointPayload


async def organization_webhook_endpoints(info: Info, org: us.Organization) -> list[WebhookEndpoint]:
    """`Organization.webhookEndpoints`: an anonymous viewer is UNAUTHENTICATED, anyone but
    the organization's OWNER/ADMIN FORBIDDEN."""
    info.context.require_viewer()
    if await viewer_role(info, org.id) not in us.MANAGERS:
        raise forbidden("Only the organization's owners and admins see its webhooks.")
    async with info.context.read() as conn:
        found = await webhooks.endpoints_of(conn, org.id)
    return [WebhookEndpoint.of(e) for e in found]


async def create_webhook_endpoint(
    info: Info, input: CreateWebhookEndpointInput
) -> WebhookEndpointPayload:
    viewer = info.context.require_viewer()
    settings = info.context.settings

    async def work(conn: AsyncConnection) -> webhooks.CreatedEndpoint:
        org_id = key(input.organization_id, "Organization", "input.organizationId")
        return await webhooks.create_endpoint(
            conn,
            viewer,
            org_id,
            input.url,
            input.events,
            allow_loopback=settings.webhook_allow_loopback,
            allow_private=settings.webhook_allow_private_networks,
        )

    created, errors = await attempt(info, work)
    if created is None:
        return WebhookEndpointPayload(errors=errors)
    return WebhookEndpointPayload(
        endpoint=WebhookEndpoint.of(created.endpoint), signing_secret=created.signing_secret
    )


async def _endpoint_payload(
    info: Info, work: Callable[[AsyncConnection], Awaitable[webhooks.WebhookEndpoint]]
) -> WebhookEndpointPayload:
    endpoint, errors = await attempt(info, work)
    return WebhookEndpointPayload(
        endpoint=WebhookEndpoint.of(endpoint) if endpoint else None, errors=errors
    )


async def delete_webhook_endpoint(info: Info, endpoint_id: strawberry.ID) -> WebhookEndpointPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> webhooks.WebhookEndpoint:
        found = key(endpoint_id, "WebhookEndpoint", "endpointId")
        return await webhooks.delete_endpoint(conn, viewer, found)

    return await _endpoint_payload(info, work)


async def resume_webhook_endpoint(info: Info, endpoint_id: strawberry.ID) -> WebhookEndpointPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> webhooks.WebhookEndpoint:
        found = key(endpoint_id, "WebhookEndpoint", "endpointId")
        return await webhooks.resume_endpoint(conn, viewer, found, info.context.now)

    return await _endpoint_payload(info, work)


async def redeliver_webhook(info: Info, delivery_id: strawberry.ID) -> WebhookEndpointPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> webhooks.WebhookEndpoint:
        found = key(delivery_id, "WebhookDelivery", "deliveryId")
        return await webhooks.redeliver(conn, viewer, found, info.context.now)

    return await _endpoint_payload(info, work)
