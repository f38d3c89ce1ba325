"""Reminders before a confirmed booking starts: by default 24 hours and 1 hour ahead,
as each organization sets them (OrganizationSettings.reminderMinutesBefore).

Nothing is scheduled ahead: `queue_due` (the dispatcher runs it every SCAN_EVERY) looks
at the confirmed bookings starting within the longest lead there can be and queues each
reminder whose time has come, keyed by the booking, the lead and the start it reminds
of. So a rescheduled booking is reminded of its new start when that one's time comes,
and a cancelled one is never looked at again. Each reminder is queued with a guard: the
dispatcher sends it only if, inside the sending transaction, the booking is still
confirmed at that start (held FOR SHARE until the send is recorded, so a cancellation
landing just before the send either is seen, or waits until the reminder has left) and
its customer still wants reminders on that channel; else it is DROPPED. A customer
whose account has a verified phone number also gets the reminder as a text message
(unless they turned SMS reminders off).

A reminder is due from `start - lead` until the next shorter one is due, and for
CATCH_UP at most: after a long outage a booking gets the nearest reminder, not all at
once. A booking made after a
reminder's time (booked 3 hours ahead) skips that one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.booking import service as booking
from domain.booking.records import Booking
from domain.notifications import deliveries
from domain.notifications.announcements import Letter, compose
from domain.notifications.invites import sequence_of
from domain.notifications.messages import MessageKind, format_lead, format_range
from domain.notifications.preferences import preferences_of
from domain.notifications.scenes import Letterhead, Scene, Texted, scenes_of
from domain.users import service as users

SCAN_EVERY = timedelta(seconds=30)
# How late a reminder may still go out (after an outage); later, only a nearer one goes.
CATCH_UP = timedelta(hours=6)


def due_lead(b: Booking, leads: tuple[int, ...], now: datetime) -> int | None:
    """The lead (minutes, of `leads`, longest first) whose reminder of `b` is due at
    `now`, if any."""
    for i, lead in enumerate(leads):
        from_ = b.start - timedelta(minutes=lead)
        until = b.start - timedelta(minutes=leads[i + 1]) if i + 1 < len(leads) else b.start
        if from_ <= now < min(until, from_ + CATCH_UP):
            return lead if b.created_at <= from_ else None
    return None


def shown_lead(lead: int, remaining: timedelta) -> int:
    """How far ahead the reminder says the booking is, in minutes: its lead when sent on
    time; else the time really left (a late one after an outage), in whole hours from
    two hours on, in 5 minutes below."""
    left = int(remaining.total_seconds() // 60)
    if left >= lead * 0.9:
        return lead
    if left >= 120:
        return round(left / 60) * 60
    return max(5, round(left / 5) * 5)


def reminder_key(b: Booking, lead: int) -> str:
    return f"reminder:{b.id}:{lead}:{b.start.isoformat()}"


def text_key(b: Booking, lead: int) -> str:
    return f"reminder-sms:{b.id}:{lead}:{b.start.isoformat()}"


async def queue_due(engine: AsyncEngine, letterhead: Letterhead, now: datetime) -> int:
    """Queues the reminders due at `now` not queued before; how many."""
    async with engine.begin() as conn:
        # Only bookings one of whose reminders fell due within CATCH_UP: a few hours'
        # worth per lead in use, not every booking of the coming week.
        leads = [timedelta(minutes=m) for m in await users.reminder_leads_in_use(conn)]
        windows = [(max(now, now + lead - CATCH_UP), now + lead) for lead in leads]
        upcoming = await booking.confirmed_starting(conn, windows)
        orgs = await users.organizations_by_id(conn, {b.organization_id for b in upcoming})
        due = {}
        for b in upcoming:
            lead = due_lead(b, orgs[b.organization_id].reminder_minutes, now)
            if lead is not None:
                due[b.id] = (b, lead)
        keys = [key for b, m in due.values() for key in (reminder_key(b, m), text_key(b, m))]
        known = await deliveries.queued_keys(conn, keys)
        # Either queued: this reminder of the booking was dealt with (a customer without
        # a verified phone never gets the text, one without an address never the mail).
        due = {
            i: (b, m)
            for i, (b, m) in due.items()
            if not {reminder_key(b, m), text_key(b, m)} & known
        }
        if not due:
            return 0
        scenes = await scenes_of(conn, list(due), letterhead)
        accounts = {
            s.customer.user_id for s in scenes.values() if s.customer and s.customer.user_id
        }
        accounts |= {s.texted.user_id for s in scenes.values() if s.texted}
        wanted = await preferences_of(conn, list(accounts))
        queued = 0
        for booking_id, scene in scenes.items():
            b, lead = due[booking_id]
            texted = scene.texted
            if texted is not None and wanted[texted.user_id].sms_reminders:
                queued += await _queue_text(conn, scene, b, lead, texted, now)
            to = scene.customer
            if to is None or (to.user_id is not None and not wanted[to.user_id].email_reminders):
                continue
            letter = Letter(
                MessageKind.REMINDER,
                to,
                b.start,
                b.end,
                b.status,
                sequence_of(scene.history),
                lead_minutes=shown_lead(lead, b.start - now),
            )
            message = compose(scene, letter, letterhead, now)
            if await deliveries.enqueue(
                conn,
                reminder_key(b, lead),
                to.email,
                message,
                due=now,
                guard=deliveries.ReminderGuard(b.id, b.start, to.user_id),
                organization_id=b.organization_id,
            ):
                queued += 1
        return queued


async def _queue_text(
    conn: AsyncConnection, scene: Scene, b: Booking, lead: int, texted: Texted, now: datetime
) -> int:
    """The reminder as a text message to the customer's verified number: what, where
    and when, in their zone."""
    text = (
        f"Reminder: {scene.service.name} at {scene.organization.name} in "
        f"{format_lead(shown_lead(lead, b.start - now))}, "
        f"{format_range(b.start, b.end, texted.time_zone)}."
    )
    queued = await deliveries.enqueue_text(
        conn,
        text_key(b, lead),
        texted.phone,
        text,
        due=now,
        guard=deliveries.ReminderGuard(b.id, b.start, texted.user_id, deliveries.SMS),
        organization_id=b.organization_id,
    )
    return 1 if queued else 0


async def still_due(conn: AsyncConnection, guard: deliveries.ReminderGuard) -> bool:
    """deliveries.Guard: the booking still confirmed at the reminded start (locked so
    until the caller's transaction ends) and its customer still wanting reminders."""
    if not await booking.still_confirmed_at(conn, guard.booking_id, guard.start):
        return False
    if guard.user_id is None:
        return True
    wanted = (await preferences_of(conn, [guard.user_id]))[guard.user_id]
    return wanted.sms_reminders if guard.channel == deliveries.SMS else wanted.email_reminders
