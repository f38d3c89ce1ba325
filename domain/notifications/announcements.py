"""What a booking's changes tell whom: the e-mails to its customer (or guest) and staff
member, and the organization's webhook events, derived from its history after the change
committed (the outbox consumer "notifications", service.announce_changed).

Each entry of a booking's history is one change; each message and event derived from
entry `i` has a key naming the booking, `i` and what it is, so the consumer, which sees
a change at least once and may see it again with later ones, queues everything once
(deliveries' dedupe key, webhook deliveries' event id). Only entries younger than
RECENT are looked at: older ones were announced when they happened (the outbox keeps a
change that long at most). A payment's receipt and refunds are keyed by the payment and
the amount refunded, whenever they come (a refund weeks after the payment).

Customer messages, by the change (previous entry -> this one):
- created PENDING_PAYMENT: received (with the payment deadline); created or paid into
  PENDING_CONFIRMATION: waiting for confirmation; into CONFIRMED: confirmed;
  DECLINED, CANCELLED, EXPIRED: declined, cancelled, expired; same status at another
  time: rescheduled. COMPLETED and NO_SHOW tell the customer nothing.
- the payment: a receipt once it succeeded, a refund message per refunded amount.
Staff messages: new once the booking holds their time for sure (PENDING_CONFIRMATION or
CONFIRMED, not while unpaid), cancelled when such a booking is cancelled, moved when it
is rescheduled. Every booking message carries the invite (.ics) of that change: UID
the booking's, SEQUENCE its history's, METHOD:CANCEL once it ends unkept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.booking.records import BookingChange, BookingStatus
from domain.notifications import deliveries, webhooks
from domain.notifications.invites import Invite, build_invite, content_type, sequence_of
from domain.notifications.messages import MessageData, MessageKind, render, to_email
from domain.notifications.scenes import Letterhead, Recipient, Scene
from domain.notifications.webhooks import WebhookEvent
from domain.payments.records import PaymentStatus
from infra.ids import to_global_id

RECENT = timedelta(days=7)

# Where the staff member's time is held for sure: they hear of the booking from here on.
HOLDS_STAFF = frozenset({BookingStatus.PENDING_CONFIRMATION, BookingStatus.CONFIRMED})
PAID = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED}
)

_CUSTOMER_BY_STATUS = {
    BookingStatus.PENDING_CONFIRMATION: MessageKind.BOOKING_AWAITING_CONFIRMATION,
    BookingStatus.CONFIRMED: MessageKind.BOOKING_CONFIRMED,
    BookingStatus.DECLINED: MessageKind.BOOKING_DECLINED,
    BookingStatus.CANCELLED: MessageKind.BOOKING_CANCELLED,
    BookingStatus.EXPIRED: MessageKind.BOOKING_EXPIRED,
}
_EVENT_BY_STATUS = {
    BookingStatus.CONFIRMED: WebhookEvent.BOOKING_CONFIRMED,
    BookingStatus.DECLINED: WebhookEvent.BOOKING_DECLINED,
    BookingStatus.CANCELLED: WebhookEvent.BOOKING_CANCELLED,
    BookingStatus.EXPIRED: WebhookEvent.BOOKING_EXPIRED,
    BookingStatus.COMPLETED: WebhookEvent.BOOKING_COMPLETED,
    BookingStatus.NO_SHOW: WebhookEvent.BOOKING_NO_SHOW,
}


def _moved(previous: BookingChange | None, change: BookingChange) -> bool:
    return (
        previous is not None
        and previous.status is change.status
        and (previous.start, previous.end) != (change.start, change.end)
    )


def customer_kinds(previous: BookingChange | None, change: BookingChange) -> list[MessageKind]:
    if _moved(previous, change):
        return [MessageKind.BOOKING_RESCHEDULED]
    if previous is not None and previous.status is change.status:
        return []
    if previous is None and change.status is BookingStatus.PENDING_PAYMENT:
        return [MessageKind.BOOKING_RECEIVED]
    kind = _CUSTOMER_BY_STATUS.get(change.status)
    return [kind] if kind is not None else []


def staff_kinds(previous: BookingChange | None, change: BookingChange) -> list[MessageKind]:
    held_before = previous is not None and previous.status in HOLDS_STAFF
    if change.status in HOLDS_STAFF:
        if not held_before:
            return [MessageKind.STAFF_BOOKING_NEW]
        return [MessageKind.STAFF_BOOKING_MOVED] if _moved(previous, change) else []
    if held_before and change.status is BookingStatus.CANCELLED:
        return [MessageKind.STAFF_BOOKING_CANCELLED]
    return []


def webhook_events(previous: BookingChange | None, change: BookingChange) -> list[WebhookEvent]:
    found = [WebhookEvent.BOOKING_CREATED] if previous is None else []
    if _moved(previous, change):
        found.append(WebhookEvent.BOOKING_RESCHEDULED)
    elif previous is None or previous.status is not change.status:
        event = _EVENT_BY_STATUS.get(change.status)
        if event is not None:
            found.append(event)
    return found


@dataclass(frozen=True, slots=True)
class Letter:
    """One message to one recipient about one moment of a booking."""

    kind: MessageKind
    to: Recipient
    start: datetime
    end: datetime
    status: BookingStatus
    sequence: int
    previous: BookingChange | None = None
    reason: str | None = None
    amount: int | None = None
    payment_due: datetime | None = None
    lead_minutes: int | None = None  # a reminder's


def compose(scene: Scene, letter: Letter, letterhead: Letterhead, now: datetime) -> Message:
    """The EmailMessage of `letter`, with the invite of that moment of the booking."""
    to_staff = letter.kind.to_staff
    data = MessageData(
        recipient_name=letter.to.name,
        recipient_email=letter.to.email,
        time_zone=letter.to.time_zone,
        organization_name=scene.organization.name,
        service_name=scene.service.name,
        staff_name=scene.staff.name,
        start=letter.start,
        end=letter.end,
        customer_name=scene.customer_name if to_staff else None,
        previous_start=letter.previous.start if letter.previous else None,
        previous_end=letter.previous.end if letter.previous else None,
        amount=letter.amount,
        currency=scene.booking.currency if letter.amount is not None else None,
        manage_link=None if to_staff else letter.to.manage_link,
        reason=letter.reason,
        payment_due=letter.payment_due,
        lead_minutes=letter.lead_minutes,
    )
    invite = Invite(
        booking_id=scene.booking.id,
        start=letter.start,
        end=letter.end,
        status=letter.status,
        sequence=letter.sequence,
        title=(
            f"{scene.service.name}: {scene.customer_name}"
            if to_staff
            else f"{scene.service.name} at {scene.organization.name}"
        ),
        organization_name=scene.organization.name,
        organizer_email=letterhead.sender_address,
        attendee_email=letter.to.email,
        attendee_name=letter.to.name,
    )
    return to_email(
        render(letter.kind, data),
        sender=letterhead.sender,
        recipient=letter.to.email,
        invite=build_invite(invite, now=now),
        invite_content_type=content_type(letter.status),
        now=now,
    )


def letters_of(scene: Scene, now: datetime) -> list[tuple[str, Letter]]:
    """Every message the scene's recent changes and payment call for, each with its
    dedupe key."""
    found: list[tuple[str, Letter]] = []
    b, history = scene.booking, scene.history
    for i, change in enumerate(history):
        if change.at < now - RECENT:
            continue
        previous = history[i - 1] if i else None
        for to, kinds in (
            (scene.customer, customer_kinds(previous, change)),
            (scene.staff_member, staff_kinds(previous, change)),
        ):
            for kind in kinds if to is not None else []:
                assert to is not None
                letter = Letter(
                    kind,
                    to,
                    change.start,
                    change.end,
                    change.status,
                    sequence_of(history[: i + 1]),
                    previous=previous if _moved(previous, change) else None,
                    reason=change.reason,
                    payment_due=b.expires_at if kind is MessageKind.BOOKING_RECEIVED else None,
                )
                found.append((f"booking:{b.id}:{i}:{kind.value}", letter))
    payment, customer = scene.payment, scene.customer
    if payment is None or customer is None or not history:
        return found
    # About the booking as it stands now.
    now_letter = Letter(
        MessageKind.PAYMENT_RECEIPT,
        customer,
        b.start,
        b.end,
        history[-1].status,
        sequence_of(history),
        amount=payment.amount,
    )
    if payment.status in PAID:
        found.append((f"payment:{payment.id}:receipt", now_letter))
    if payment.refunded_amount > 0:
        refund = replace(
            now_letter, kind=MessageKind.PAYMENT_REFUND, amount=payment.refunded_amount
        )
        found.append((f"payment:{payment.id}:refund:{payment.refunded_amount}", refund))
    return found


def _instant(moment: datetime) -> str:
    """As the API writes a DateTime: UTC, with Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def booking_data(
    scene: Scene, change: BookingChange, previous: BookingChange | None
) -> dict[str, Any]:
    """A webhook event's `data`: the booking as it was after that change."""
    b = scene.booking
    data: dict[str, Any] = {
        "booking": {
            "id": to_global_id("Booking", b.id),
            "reference": b.reference,
            "status": change.status.value,
            "start": _instant(change.start),
            "end": _instant(change.end),
            "organizationId": to_global_id("Organization", b.organization_id),
            "serviceId": to_global_id("Service", b.service_id),
            "staffId": to_global_id("Staff", b.staff_id),
            "customerId": to_global_id("User", b.customer_id) if b.customer_id else None,
            "customerName": scene.customer_name,
            "customerEmail": scene.customer.email if scene.customer else None,
            "priceAmount": b.price_amount,
            "currency": b.currency,
        },
        "actor": change.actor.value,
        "reason": change.reason,
    }
    if _moved(previous, change) and previous is not None:
        data["previousStart"] = _instant(previous.start)
        data["previousEnd"] = _instant(previous.end)
    return data


async def announce(
    conn: AsyncConnection, scene: Scene, letterhead: Letterhead, now: datetime
) -> int:
    """Queues the scene's messages and webhook events in the caller's transaction; how
    many messages were new."""
    queued = 0
    letters = letters_of(scene, now)
    # Rendered only when new: the consumer sees most changes again with later ones.
    known = await deliveries.queued_keys(conn, [key for key, _ in letters])
    for key, letter in letters:
        if key in known:
            continue
        message = compose(scene, letter, letterhead, now)
        if await deliveries.enqueue(
            conn, key, letter.to.email, message, organization_id=scene.organization.id
        ):
            queued += 1
    b, history = scene.booking, scene.history
    for i, change in enumerate(history):
        if change.at < now - RECENT:
            continue
        previous = history[i - 1] if i else None
        for event in webhook_events(previous, change):
            await webhooks.publish(
                conn,
                b.organization_id,
                event,
                f"evt_{b.id.hex}_{i}_{event.value.lower()}",
                change.at,
                booking_data(scene, change, previous),
            )
    payment = scene.payment
    if payment is not None and history:
        data = booking_data(scene, history[-1], None) | {
            "payment": {
                "id": to_global_id("Payment", payment.id),
                "status": payment.status.value,
                "amount": payment.amount,
                "refundedAmount": payment.refunded_amount,
                "currency": payment.currency,
            }
        }
        at = payment.state_at or now
        if payment.status in PAID:
            await webhooks.publish(
                conn,
                b.organization_id,
                WebhookEvent.PAYMENT_SUCCEEDED,
                f"evt_{payment.id.hex}_succeeded",
                at,
                data,
            )
        if payment.refunded_amount > 0:
            await webhooks.publish(
                conn,
                b.organization_id,
                WebhookEvent.PAYMENT_REFUNDED,
                f"evt_{payment.id.hex}_refunded_{payment.refunded_amount}",
                at,
                data,
            )
    return queued
