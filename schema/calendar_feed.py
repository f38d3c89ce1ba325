"""The answer of rotateCalendarFeed: a secret calendar feed's address."""

from __future__ import annotations

import strawberry

from schema.common import UserError


@strawberry.type
class CalendarFeedPayload:
    url: str | None = strawberry.field(
        default=None,
        description="The feed's address (`.../calendar/<secret>.ics`) to subscribe to in a"
        " calendar app; shown only now. Anyone holding it can read the feed: rotating"
        " again gives a new one and the old one stops working at once.",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)
