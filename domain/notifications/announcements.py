"""What a booking's changes tell whom: the e-mails to its customer (or guest) and staff
member, and the organization's webhook events, derived from its history after the change
committed (the outbox consumer "notifications", service.announce_changed).

Each entry of a booking's history is one change; each message and event derived from
entry `i` has a key naming the booking, `i` and what it is, so the consumer, which sees
a change at least once and may see it again with later ones, queues everything once
(deliveries' dedupe key, webhook deliveries' event id). Only entries younger than
RECENT are looked at: older ones were announced when they happened (the outbox keeps a
change that long at most). A payment's receipt is derived within RECENT of its success,
a refund within RECENT of it (a refund weeks after the payment is told), keyed by the
payment and the amount refunded.

Customer messages, by the change (previous entry -> this one):
- created PENDING_PAYMENT: received (with the payment deadline); created or paid into
  PENDING_CONFIRMATION: waiting for confirmation; into CONFIRMED: confirmed;
  DECLINED, CANCELLED, EXPIRED: declined, cancelled, expired; same status at another
  time: rescheduled. COMPLETED and NO_SHOW tell the customer nothing.
- the payment: a receipt once it succeeded, a refund message per refunded amount.
Staff messages: new once the booking holds their time (PENDING_CONFIRMATION or
CONFIRMED, not while unpaid), then confirmed or declined (a request they had), cancelled,
moved when it is rescheduled; a booking handed to a colleague by a reschedule is
cancelled for the one (its invite a CANCEL) and new for the other. The history records
the staff member after each change (`BookingChange.staff_id`). Every booking message
carries the invite (.ics) of that change: UID the booking's, SEQUENCE its history's,
METHOD:CANCEL once it ends unkept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.booking.records import BookingChange, BookingStatus
from domain.notifications import deliveries, webhooks
from domain.notifications.invites import Invite, build_invite, content_type, sequence_of
from domain.notifications.messages import MessageData, MessageKind, render, to_email
from domain.notifications.scenes import Letterhead, Recipient, Scene, StaffMember
from domain.notifications.webhooks import WebhookEvent
from domain.payments.records import Payment, PaymentStatus
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


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of a booking's history against the one before: what changed."""

    previous: BookingChange | None
    change: BookingChange
    previous_staff: uuid.UUID
    staff: uuid.UUID

    @property
    def retimed(self) -> bool:
        previous = self.previous
        return (
            previous is not None
            and previous.status is self.change.status
            and (previous.start, previous.end) != (self.change.start, self.change.end)
        )

    @property
    def restaffed(self) -> bool:
        previous = self.previous
        return (
            previous is not None
            and previous.status is self.change.status
            and self.previous_staff != self.staff
        )

    @property
    def moved(self) -> bool:
        return self.retimed or self.restaffed

    @property
    def new_status(self) -> bool:
        return self.previous is None or self.previous.status is not self.change.status


def steps_of(history: list[BookingChange], staff_now: uuid.UUID) -> list[Step]:
    """The history's entries as steps. An entry without a staff member (written before
    they were recorded, or by a change that cannot move one) keeps the one before; the
    booking's present one stands in for those never recorded."""
    known = [c.staff_id for c in history if c.staff_id is not None]
    staff = known[0] if known else staff_now
    steps, previous = [], None
    for change in history:
        before = staff
        staff = change.staff_id or staff
        steps.append(Step(previous, change, before, staff))
        previous = change
    return steps


def customer_kinds(step: Step) -> list[MessageKind]:
    change = step.change
    if step.moved:
        return [MessageKind.BOOKING_RESCHEDULED]
    if not step.new_status:
        return []
    if step.previous is None and change.status is BookingStatus.PENDING_PAYMENT:
        return [MessageKind.BOOKING_RECEIVED]
    kind = _CUSTOMER_BY_STATUS.get(change.status)
    return [kind] if kind is not None else []


def staff_kinds(step: Step) -> list[tuple[uuid.UUID, MessageKind]]:
    """Who of the staff hears what: (staff member, message)."""
    previous, status = step.previous, step.change.status
    held_before = previous is not None and previous.status in HOLDS_STAFF
    if status in HOLDS_STAFF:
        if not held_before:
            return [(step.staff, MessageKind.STAFF_BOOKING_NEW)]
        found = []
        if step.restaffed:  # handed to a colleague: gone from one calendar, new in another
            found.append((step.previous_staff, MessageKind.STAFF_BOOKING_CANCELLED))
            found.append((step.staff, MessageKind.STAFF_BOOKING_NEW))
        elif step.retimed:
            found.append((step.staff, MessageKind.STAFF_BOOKING_MOVED))
        if step.new_status and status is BookingStatus.CONFIRMED:
            found.append((step.staff, MessageKind.STAFF_BOOKING_CONFIRMED))
        return found
    if held_before and status is BookingStatus.CANCELLED:
        return [(step.previous_staff, MessageKind.STAFF_BOOKING_CANCELLED)]
    if held_before and status is BookingStatus.DECLINED:
        return [(step.previous_staff, MessageKind.STAFF_BOOKING_DECLINED)]
    return []


def webhook_events(step: Step) -> list[WebhookEvent]:
    found = [WebhookEvent.BOOKING_CREATED] if step.previous is None else []
    if step.moved:
        found.append(WebhookEvent.BOOKING_RESCHEDULED)
    elif step.new_status:
        event = _EVENT_BY_STATUS.get(step.change.status)
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
    staff_name: str = ""  # the staff member of that moment
    previous: BookingChange | None = None
    previous_staff_name: str | None = None  # when the move changed the staff member
    reason: str | None = None
    amount: int | None = None
    payment_due: datetime | None = None
    lead_minutes: int | None = None  # a reminder's
    cancels: bool = False  # the invite takes the event off (a booking handed to another)


def compose(scene: Scene, letter: Letter, letterhead: Letterhead, now: datetime) -> Message:
    """The EmailMessage of `letter`, with the invite of that moment of the booking."""
    to_staff = letter.kind.to_staff
    data = MessageData(
        recipient_name=letter.to.name,
        recipient_email=letter.to.email,
        time_zone=letter.to.time_zone,
        organization_name=scene.organization.name,
        service_name=scene.service.name,
        staff_name=letter.staff_name or scene.staff.name,
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
        previous_staff_name=letter.previous_staff_name,
    )
    invite_status = BookingStatus.CANCELLED if letter.cancels else letter.status
    invite = Invite(
        booking_id=scene.booking.id,
        start=letter.start,
        end=letter.end,
        status=invite_status,
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
        invite_content_type=content_type(invite_status),
        now=now,
    )


NOBODY = Recipient("", "", "UTC", None)  # stands in until a letter is addressed


def _moment(step: Step, sequence: int, names: dict[uuid.UUID, StaffMember]) -> Letter:
    """What every letter about this step says, not yet addressed."""
    change = step.change
    previous_staff = names.get(step.previous_staff) if step.restaffed else None
    return Letter(
        MessageKind.BOOKING_CONFIRMED,
        NOBODY,
        change.start,
        change.end,
        change.status,
        sequence,
        staff_name=names[step.staff].name if step.staff in names else "",
        previous=step.previous if step.moved else None,
        previous_staff_name=previous_staff.name if previous_staff is not None else None,
        reason=change.reason,
    )


def letters_of(scene: Scene, steps: list[Step], now: datetime) -> list[tuple[str, Letter]]:
    """Every message the scene's recent changes (`steps`, its history's) and payment
    call for, each with its dedupe key."""
    found: list[tuple[str, Letter]] = []
    b, history, names = scene.booking, scene.history, scene.staff_members
    for i, step in enumerate(steps):
        if step.change.at < now - RECENT:
            continue
        moment = _moment(step, sequence_of(history[: i + 1]), names)
        key = f"booking:{b.id}:{i}"
        if scene.customer is not None:
            for kind in customer_kinds(step):
                due = b.expires_at if kind is MessageKind.BOOKING_RECEIVED else None
                letter = replace(moment, kind=kind, to=scene.customer, payment_due=due)
                found.append((f"{key}:{kind.value}", letter))
        for staff_id, kind in staff_kinds(step):
            member = names.get(staff_id)
            if member is None or member.inbox is None:
                continue
            letter = replace(moment, kind=kind, to=member.inbox)
            if step.restaffed and staff_id == step.previous_staff:  # handed to a colleague
                letter = replace(letter, cancels=True, reason=f"moved to {moment.staff_name}")
            found.append((f"{key}:{kind.value}:{staff_id}", letter))
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
    if _receipt_due(payment, now):
        found.append((f"payment:{payment.id}:receipt", now_letter))
    if _refund_due(payment, now):
        refund = replace(
            now_letter, kind=MessageKind.PAYMENT_REFUND, amount=payment.refunded_amount
        )
        found.append((f"payment:{payment.id}:refund:{payment.refunded_amount}", refund))
    return found


def _lately(moment: datetime | None, now: datetime) -> bool:
    """Within RECENT: a payment's success (state_at) or its last refund (updated_at) is
    announced when it happens, never again when its booking changes months later (by
    then its key may have been forgotten, maintenance.py)."""
    return moment is None or moment >= now - RECENT


def _receipt_due(payment: Payment, now: datetime) -> bool:
    return payment.status in PAID and _lately(payment.state_at, now)


def _refund_due(payment: Payment, now: datetime) -> bool:
    return payment.refunded_amount > 0 and _lately(payment.updated_at, now)


def _instant(moment: datetime) -> str:
    """As the API writes a DateTime: UTC, with Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def booking_data(scene: Scene, step: Step) -> dict[str, Any]:
    """A webhook event's `data`: the booking as it was after that change."""
    b, change, previous = scene.booking, step.change, step.previous
    data: dict[str, Any] = {
        "booking": {
            "id": to_global_id("Booking", b.id),
            "reference": b.reference,
            "status": change.status.value,
            "start": _instant(change.start),
            "end": _instant(change.end),
            "organizationId": to_global_id("Organization", b.organization_id),
            "serviceId": to_global_id("Service", b.service_id),
            "staffId": to_global_id("Staff", step.staff),
            "customerId": to_global_id("User", b.customer_id) if b.customer_id else None,
            "customerName": scene.customer_name,
            "customerEmail": scene.customer.email if scene.customer else None,
            "priceAmount": b.price_amount,
            "currency": b.currency,
        },
        "actor": change.actor.value,
        "reason": change.reason,
    }
    if step.moved and previous is not None:
        data["previousStart"] = _instant(previous.start)
        data["previousEnd"] = _instant(previous.end)
        data["previousStaffId"] = to_global_id("Staff", step.previous_staff)
    return data


async def announce(
    conn: AsyncConnection, scene: Scene, letterhead: Letterhead, now: datetime
) -> int:
    """Queues the scene's messages and webhook events in the caller's transaction; how
    many messages were new."""
    queued = 0
    b, history = scene.booking, scene.history
    steps = steps_of(history, b.staff_id)
    letters = letters_of(scene, steps, now)
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
    for i, step in enumerate(steps):
        if step.change.at < now - RECENT:
            continue
        for event in webhook_events(step):
            await webhooks.publish(
                conn,
                b.organization_id,
                event,
                f"evt_{b.id.hex}_{i}_{event.value.lower()}",
                step.change.at,
                booking_data(scene, step),
            )
    payment = scene.payment
    if payment is not None and steps:
        data = booking_data(scene, replace(steps[-1], previous=None)) | {
            "payment": {
                "id": to_global_id("Payment", payment.id),
                "status": payment.status.value,
                "amount": payment.amount,
                "refundedAmount": payment.refunded_amount,
                "currency": payment.currency,
            }
        }
        at = payment.state_at or now
        if _receipt_due(payment, now):
            await webhooks.publish(
                conn,
                b.organization_id,
                WebhookEvent.PAYMENT_SUCCEEDED,
                f"evt_{payment.id.hex}_succeeded",
                at,
                data,
            )
        if _refund_due(payment, now):
            await webhooks.publish(
                conn,
                b.organization_id,
                WebhookEvent.PAYMENT_REFUNDED,
                f"evt_{payment.id.hex}_refunded_{payment.refunded_amount}",
                at,
                data,
            )
    return queued
