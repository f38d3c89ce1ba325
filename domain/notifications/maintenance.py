"""Forgetting what was delivered: messages sent, dropped or given up, and webhook
deliveries delivered or given up, KEPT after they were queued (dead letters stay listed
that long for their organization). Their keys are forgotten with them, which is safe:
nothing derives a message from a change older than announcements.RECENT, or a reminder
for a start that far back. Each run deletes at most BATCH rows of each table, so it never
holds a long lock; the periodic job (domain/background.py) runs hourly."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.notifications.tables import notification_deliveries as messages
from domain.notifications.webhook_tables import webhook_deliveries

KEPT = timedelta(days=90)
BATCH = 5000
DONE_MESSAGES = ("SENT", "DROPPED", "DEAD")
DONE_DELIVERIES = ("DELIVERED", "DEAD")


async def forget_delivered(engine: AsyncEngine, now: datetime) -> tuple[int, int]:
    """(messages, webhook deliveries) deleted."""
    before = now - KEPT
    async with engine.begin() as conn:
        old_messages = (
            select(messages.c.id)
            .where(messages.c.status.in_(DONE_MESSAGES), messages.c.created_at < before)
            .limit(BATCH)
        )
        gone = await conn.execute(delete(messages).where(messages.c.id.in_(old_messages)))
        old_deliveries = (
            select(webhook_deliveries.c.id)
            .where(
                webhook_deliveries.c.status.in_(DONE_DELIVERIES),
                webhook_deliveries.c.created_at < before,
            )
            .limit(BATCH)
        )
        hooks = await conn.execute(
            delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(old_deliveries))
        )
    return gone.rowcount, hooks.rowcount
