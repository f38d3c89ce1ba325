"""An organization's booking and refund policy: its type, input and payload."""

from __future__ import annotations

import strawberry

from domain.users import records as us
from schema.common import UserError


@strawberry.type(name="OrganizationSettings")
class OrganizationSettings:
    hold_minutes: int = strawberry.field(
        description="How long a hold or an unpaid booking keeps its slot (1-120)."
    )
    free_cancellation_hours: int = strawberry.field(
        description=(
            "A paid booking its customer cancels at least this long before its start"
            " is refunded in full (0-720)."
        )
    )
    late_cancellation_refund_percent: int = strawberry.field(
        description="What is refunded of one cancelled later than that (0-100)."
    )
    reminder_minutes_before: list[int] = strawberry.field(
        description="When a confirmed booking's customer is reminded, in minutes before"
        " its start, longest first (default 1440 and 60: a day and an hour ahead)."
    )

    @classmethod
    def of(cls, record: us.OrganizationSettings) -> OrganizationSettings:
        return cls(
            hold_minutes=record.hold_minutes,
            free_cancellation_hours=record.free_cancellation_hours,
            late_cancellation_refund_percent=record.late_cancellation_refund_percent,
            reminder_minutes_before=list(record.reminder_minutes),
        )


@strawberry.input
class UpdateOrganizationSettingsInput:
    organization_id: strawberry.ID
    hold_minutes: int | None = strawberry.field(default=None, description="Null: unchanged.")
    free_cancellation_hours: int | None = strawberry.field(
        default=None, description="Null: unchanged."
    )
    late_cancellation_refund_percent: int | None = strawberry.field(
        default=None, description="Null: unchanged."
    )
    reminder_minutes_before: list[int] | None = strawberry.field(
        default=None,
        description="At most 3, each 10-10080 minutes (a week); [] sends no reminders."
        " Null: unchanged.",
    )


@strawberry.type
class OrganizationSettingsPayload:
    settings: OrganizationSettings | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
