"""Booking over the public API, as an SPA would."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import GraphQLClient

BOOKING_FIELDS = """
  id reference status start end notes guestName guestEmail expiresAt createdAt
  cancelledAt cancellationReason price { amount currency }
  service { id } staff { id } customer { id }
  history { status actor start end reason }
"""

CREATE = f"""
mutation($input: CreateBookingInput!) {{
  createBooking(input: $input) {{
    booking {{ {BOOKING_FIELDS} }} manageToken errors {{ code field message }}
  }}
}}"""

HOLD = """
mutation($input: HoldSlotInput!) {
  holdSlot(input: $input) {
    hold { id start end expiresAt service { id } staff { id } } errors { code field message }
  }
}"""

CANCEL = f"""
mutation($input: CancelBookingInput!) {{
  cancelBooking(input: $input) {{ booking {{ {BOOKING_FIELDS} }} errors {{ code field }} }}
}}"""

RESCHEDULE = f"""
mutation($input: RescheduleBookingInput!) {{
  rescheduleBooking(input: $input) {{ booking {{ {BOOKING_FIELDS} }} errors {{ code field }} }}
}}"""

CONFIRM = f"""
mutation($id: ID!) {{ confirmBooking(bookingId: $id) {{
  booking {{ {BOOKING_FIELDS} }} errors {{ code field }} }} }}"""

DECLINE = f"""
mutation($id: ID!, $reason: String) {{ declineBooking(bookingId: $id, reason: $reason) {{
  booking {{ {BOOKING_FIELDS} }} errors {{ code field }} }} }}"""

READ = f"""
query($id: ID!, $token: String) {{
  booking(id: $id, manageToken: $token) {{ {BOOKING_FIELDS} }}
}}"""


def key() -> str:
    return uuid.uuid4().hex


async def create(gql: GraphQLClient, token: str | None = None, **input: Any) -> dict[str, Any]:
    input.setdefault("idempotencyKey", key())
    data = await gql.data(CREATE, {"input": input}, token)
    result: dict[str, Any] = data["createBooking"]
    return result
