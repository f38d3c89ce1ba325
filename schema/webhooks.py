"""Organization webhooks: endpoints, their deliveries, the input and payload."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.notifications import webhooks
from infra.ids import to_global_id
from resolvers.paging import page_args, page_info
from schema.common import Node, PageInfo, UserError, encode_cursor
from schema.context import Info

WebhookEvent = strawberry.enum(webhooks.WebhookEvent, name="WebhookEvent")
DeliveryStatus = strawberry.enum(webhooks.DeliveryStatus, name="DeliveryStatus")


@strawberry.type(name="WebhookDelivery", description="One event sent (or to send) to an endpoint.")
class WebhookDelivery:
    id: strawberry.ID
    event: WebhookEvent  # type: ignore[valid-type]
    status: DeliveryStatus  # type: ignore[valid-type]
    attempts: int
    last_status_code: int | None = strawberry.field(
        description="The receiver's HTTP status on the last attempt; null: no answer."
    )
    last_error: str | None = strawberry.field(
        description='Why the last attempt failed ("HTTP 500", "Timed out after 10 s").'
    )
    next_attempt_at: datetime | None = strawberry.field(
        description="When it is tried next (PENDING, FAILED); null once DELIVERED or DEAD."
    )
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, record: webhooks.WebhookDelivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", record.id)),
            event=record.event,
            status=record.status,
            attempts=record.attempts,
            last_status_code=record.last_status_code,
            last_error=record.last_error,
            next_attempt_at=record.next_attempt_at,
            created_at=record.created_at,
            delivered_at=record.delivered_at,
        )


@strawberry.type(name="WebhookDeliveryEdge")
class WebhookDeliveryEdge:
    node: WebhookDelivery
    cursor: str


@strawberry.type(name="WebhookDeliveryConnection")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


@strawberry.type(name="WebhookEndpoint")
class WebhookEndpoint(Node):
    record: strawberry.Private[webhooks.WebhookEndpoint]
    url: str
    events: list[WebhookEvent]  # type: ignore[valid-type]
    active: bool = strawberry.field(
        description="False once paused after failing for 24 hours (resumeWebhookEndpoint)."
    )
    paused_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, record: webhooks.WebhookEndpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", record.id)),
            record=record,
            url=record.url,
            events=list(record.events),
            active=record.active,
            paused_reason=record.paused_reason,
            created_at=record.created_at,
        )

    @strawberry.field(description="Newest first.")  # type: ignore[untyped-decorator]
    async def deliveries(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> WebhookDeliveryConnection:
        # Only reached through Organization.webhookEndpoints or a manager's mutation.
        count, key = page_args(first, after)
        async with info.context.read() as conn:
            rows = await webhooks.deliveries_page(conn, self.record.id, count, key)
        shown = rows[:count]
        cursors = [encode_cursor(r.id) for r in shown]
        return WebhookDeliveryConnection(
            edges=[
                WebhookDeliveryEdge(node=WebhookDelivery.of(r), cursor=c)
                for r, c in zip(shown, cursors, strict=True)
            ],
            page_info=page_info(cursors, len(rows) > count, key is not None),
        )


@strawberry.input
class CreateWebhookEndpointInput:
    organization_id: strawberry.ID
    url: str = strawberry.field(
        description="https:// on the public internet (http:// only to loopback, when allowed)."
    )
    events: list[WebhookEvent]  # type: ignore[valid-type]


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    signing_secret: str | None = strawberry.field(
        default=None,
        description="Only on create: the key receivers verify signatures with (whsec_...).",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)
