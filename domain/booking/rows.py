"""Table rows as the records the booking domain hands out."""

from __future__ import annotations

from sqlalchemy.engine import RowMapping

from domain.booking.records import Booking, BookingStatus, Hold


def booking_from_row(row: RowMapping) -> Booking:
    return Booking(
        id=row["id"],
        reference=row["reference"],
        organization_id=row["organization_id"],
        service_id=row["service_id"],
        staff_id=row["staff_id"],
        customer_id=row["customer_id"],
        guest_name=row["guest_name"],
        guest_email=row["guest_email"],
        guest_phone=row["guest_phone"],
        start=row["start_at"],
        end=row["end_at"],
        status=BookingStatus(row["status"]),
        notes=row["notes"],
        price_amount=row["price_amount"],
        currency=row["currency"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        cancellation_reason=row["cancellation_reason"],
    )


def hold_from_row(row: RowMapping) -> Hold:
    return Hold(
        id=row["id"],
        service_id=row["service_id"],
        staff_id=row["staff_id"],
        user_id=row["user_id"],
        start=row["start_at"],
        end=row["end_at"],
        expires_at=row["expires_at"],
        booking_id=row["booking_id"],
    )
