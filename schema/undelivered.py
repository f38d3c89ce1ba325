"""E-mails about an organization's bookings that could not be delivered."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.notifications.deliveries import DeadLetter
from infra.ids import to_global_id
from schema.common import UserError


@strawberry.type(
    name="UndeliveredMessage",
    description="A message the mail server (or SMS provider) did not take for a day, or"
    " refused for good.",
)
class UndeliveredMessage:
    id: strawberry.ID
    channel: str = strawberry.field(description='"email", or "sms" for a text reminder.')
    recipient: str = strawberry.field(description="An e-mail address, or a phone number.")
    subject: str | None
    attempts: int
    last_error: str | None = strawberry.field(description="What the mail server said last.")
    created_at: datetime

    @classmethod
    def of(cls, letter: DeadLetter) -> UndeliveredMessage:
        return cls(
            id=strawberry.ID(to_global_id("UndeliveredMessage", letter.id)),
            channel=letter.channel,
            recipient=letter.recipient,
            subject=letter.subject,
            attempts=letter.attempts,
            last_error=letter.last_error,
            created_at=letter.created_at,
        )


@strawberry.type
class RetryMessagePayload:
    message: UndeliveredMessage | None = strawberry.field(
        default=None, description="The message as it was: it is queued again, due now."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)
