"""Offered slots. Plain attributes only: an availability answer holds thousands of
fields, and a field without a resolver is the cheapest one to execute."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from schema.catalog import Service, Staff


@strawberry.type(name="Slot")
class Slot:
    start: datetime
    end: datetime
    staff: list[Staff] = strawberry.field(description="Who can take this slot.")
    remaining_capacity: int = strawberry.field(description="Summed over those staff.")


@strawberry.type(name="AvailabilityDay")
class AvailabilityDay:
    date: date = strawberry.field(description="In Availability.timeZone.")
    slots: list[Slot]


@strawberry.type(name="Availability")
class Availability:
    service: Service
    time_zone: str
    slots: list[Slot]
    days: list[AvailabilityDay]
