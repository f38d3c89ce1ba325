"""The payments domain's rows: payments, refunds and the provider events applied. SQL
only; saga.py decides what to write."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from domain.payments.provider import Intent
from domain.payments.records import OPEN, Payment, PaymentStatus, Refund
from domain.payments.tables import payment_events, payments, refunds
from infra.ids import uuid7


def _payment(row: RowMapping) -> Payment:
    return Payment(
        id=row["id"],
        booking_id=row["booking_id"],
        organization_id=row["organization_id"],
        provider=row["provider"],
        intent_id=row["intent_id"],
        client_secret=row["client_secret"],
        status=PaymentStatus(row["status"]),
        amount=row["amount"],
        refunded_amount=row["refunded_amount"],
        currency=row["currency"],
        last_error=row["last_error"],
        state_at=row["state_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def open_payment(
    conn: AsyncConnection,
    booking_id: uuid.UUID,
    organization_id: uuid.UUID,
    amount: int,
    currency: str,
    provider: str,
) -> None:
    await conn.execute(
        insert(payments).values(
            id=uuid7(),
            booking_id=booking_id,
            organization_id=organization_id,
            provider=provider,
            status=PaymentStatus.REQUIRES_PAYMENT.value,
            amount=amount,
            currency=currency,
        )
    )


async def payments_of_bookings(
    conn: AsyncConnection, booking_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Payment]:
    rows = await conn.execute(select(payments).where(payments.c.booking_id.in_(booking_ids)))
    return {r["booking_id"]: _payment(r) for r in rows.mappings()}


async def _one_payment(
    conn: AsyncConnection, condition: ColumnElement[bool], for_update: bool
) -> Payment | None:
    query = select(payments).where(condition)
    row = (await conn.execute(query.with_for_update() if for_update else query)).mappings().first()
    return _payment(row) if row else None


async def payment_of_booking(
    conn: AsyncConnection, booking_id: uuid.UUID, *, for_update: bool = False
) -> Payment | None:
    return await _one_payment(conn, payments.c.booking_id == booking_id, for_update)


async def payment_by_id(conn: AsyncConnection, payment_id: uuid.UUID) -> Payment:
    found = await _one_payment(conn, payments.c.id == payment_id, for_update=False)
    assert found is not None  # refunds name existing payments
    return found


async def payment_by_intent(conn: AsyncConnection, intent_id: str) -> Payment | None:
    return await _one_payment(conn, payments.c.intent_id == intent_id, for_update=True)


async def attach_intent(conn: AsyncConnection, payment_id: uuid.UUID, intent: Intent) -> None:
    await conn.execute(
        update(payments)
        .where(payments.c.id == payment_id, payments.c.intent_id.is_(None))
        .values(intent_id=intent.id, client_secret=intent.client_secret, updated_at=func.now())
    )


async def set_state(
    conn: AsyncConnection,
    payment_id: uuid.UUID,
    status: PaymentStatus,
    error: str | None,
    at: datetime | None,
) -> None:
    await conn.execute(
        update(payments)
        .where(payments.c.id == payment_id)
        .values(status=status.value, last_error=error, state_at=at, updated_at=func.now())
    )


async def set_refunded(conn: AsyncConnection, payment: Payment, refunded: int) -> bool:
    """Refunds only add up: the larger of what we knew and what we are told; the status
    follows. True when it changed."""
    total = min(max(payment.refunded_amount, refunded), payment.amount)
    if total == payment.refunded_amount or total == 0:
        return False
    status = PaymentStatus.REFUNDED if total == payment.amount else PaymentStatus.PARTIALLY_REFUNDED
    await conn.execute(
        update(payments)
        .where(payments.c.id == payment.id)
        .values(refunded_amount=total, status=status.value, updated_at=func.now())
    )
    return True


async def first_sight_of_event(conn: AsyncConnection, event_id: str, kind: str) -> bool:
    """Notes the provider's event as applied; False when it was already."""
    noted = await conn.scalar(
        pg_insert(payment_events)
        .values(id=event_id, type=kind)
        .on_conflict_do_nothing()
        .returning(payment_events.c.id)
    )
    return noted is not None


async def forget_events(conn: AsyncConnection, older_than: datetime) -> None:
    await conn.execute(payment_events.delete().where(payment_events.c.received_at < older_than))


# A refund the provider refused this often (refunded elsewhere, say) waits for a person:
# it is logged at each try and stays PENDING.
MAX_REFUND_ATTEMPTS = 50


def _refund(row: RowMapping) -> Refund:
    return Refund(
        row["id"],
        row["payment_id"],
        row["amount"],
        row["reason"],
        row["status"],
        row["provider_ref"],
    )


async def decide_refund(
    conn: AsyncConnection, payment_id: uuid.UUID, amount: int, reason: str
) -> Refund | None:
    """The one compensation of a payment, decided once (nothing due is a decision too:
    NOT_DUE); None when it was decided before."""
    row = (
        (
            await conn.execute(
                pg_insert(refunds)
                .values(
                    id=uuid7(),
                    payment_id=payment_id,
                    amount=amount,
                    reason=reason,
                    status="PENDING" if amount > 0 else "NOT_DUE",
                )
                .on_conflict_do_nothing()
                .returning(refunds)
            )
        )
        .mappings()
        .first()
    )
    return _refund(row) if row else None


async def refund_of(conn: AsyncConnection, payment_id: uuid.UUID) -> Refund | None:
    row = (
        (await conn.execute(select(refunds).where(refunds.c.payment_id == payment_id)))
        .mappings()
        .first()
    )
    return _refund(row) if row else None


async def pending_refunds(conn: AsyncConnection, most: int) -> list[Refund]:
    rows = await conn.execute(
        select(refunds)
        .where(refunds.c.status == "PENDING", refunds.c.attempts < MAX_REFUND_ATTEMPTS)
        .order_by(refunds.c.created_at)
        .limit(most)
    )
    return [_refund(r) for r in rows.mappings()]


async def refund_tried(conn: AsyncConnection, refund_id: uuid.UUID) -> None:
    await conn.execute(
        update(refunds).where(refunds.c.id == refund_id).values(attempts=refunds.c.attempts + 1)
    )


async def refund_done(conn: AsyncConnection, refund_id: uuid.UUID, provider_ref: str) -> bool:
    done = await conn.scalar(
        update(refunds)
        .where(refunds.c.id == refund_id, refunds.c.status == "PENDING")
        .values(status="SUCCEEDED", provider_ref=provider_ref, done_at=func.now())
        .returning(refunds.c.id)
    )
    return done is not None


async def open_payments(
    conn: AsyncConnection,
    provider: str,
    checked_before: datetime,
    created_before: datetime,
    most: int,
) -> list[Payment]:
    """This provider's payments still open that the reconciliation has not asked about
    lately; one without an intent only once older than `created_before` (until then its
    own request is making the intent)."""
    rows = await conn.execute(
        select(payments)
        .where(
            payments.c.provider == provider,
            payments.c.status.in_([s.value for s in OPEN]),
            payments.c.intent_id.is_not(None) | (payments.c.created_at < created_before),
            (payments.c.checked_at.is_(None)) | (payments.c.checked_at < checked_before),
        )
        .order_by(payments.c.created_at)
        .limit(most)
    )
    return [_payment(r) for r in rows.mappings()]


async def checked(conn: AsyncConnection, payment_ids: Sequence[uuid.UUID], at: datetime) -> None:
    await conn.execute(update(payments).where(payments.c.id.in_(payment_ids)).values(checked_at=at))
