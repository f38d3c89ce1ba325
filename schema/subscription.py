"""The Subscription root type (served over WebSocket: realtime/websocket.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import subscription
from schema.availability import Availability
from schema.booking import Booking


@strawberry.type
class Subscription:
    availability_changed: AsyncGenerator[Availability, None] = strawberry.subscription(
        resolver=subscription.availability_changed,
        description="The whole fresh availability of the window on subscribe, then again "
        "each time a booking, hold, schedule or time-off change touches it.",
    )
    booking_changed: AsyncGenerator[Booking, None] = strawberry.subscription(
        resolver=subscription.booking_changed,
        description="The booking on subscribe, then on every status, time or payment change.",
    )
