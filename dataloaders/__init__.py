"""Per-request batch loaders: one field that loads related rows costs one statement
per batch, not one per parent. Created afresh for every request (and, for
subscriptions, every event), so nothing cached outlives what it describes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from dataloaders.history_by_booking import history_by_booking
from dataloaders.memberships_by_user import memberships_by_user
from dataloaders.organizations_by_id import organizations_by_id
from dataloaders.overrides_by_staff import overrides_by_staff
from dataloaders.service_ids_by_staff import service_ids_by_staff
from dataloaders.services_by_id import services_by_id
from dataloaders.staff_by_id import staff_by_id
from dataloaders.staff_ids_by_service import staff_ids_by_service
from dataloaders.time_off_by_id import time_off_by_id
from dataloaders.time_off_by_staff import time_off_by_staff
from dataloaders.users_by_id import users_by_id
from dataloaders.weekly_hours_by_staff import weekly_hours_by_staff
from domain.availability.records import DateOverride, Service, Staff, TimeOff, WorkingHours
from domain.booking.records import BookingChange
from domain.users.records import Membership, Organization, User


@dataclass(frozen=True, slots=True)
class DataLoaders:
    users: DataLoader[uuid.UUID, User | None]
    organizations: DataLoader[uuid.UUID, Organization | None]
    memberships: DataLoader[uuid.UUID, list[Membership] | None]
    services: DataLoader[uuid.UUID, Service | None]
    staff: DataLoader[uuid.UUID, Staff | None]
    time_off: DataLoader[uuid.UUID, TimeOff | None]
    staff_ids_of_service: DataLoader[uuid.UUID, list[uuid.UUID] | None]
    service_ids_of_staff: DataLoader[uuid.UUID, list[uuid.UUID] | None]
    weekly_hours: DataLoader[uuid.UUID, list[WorkingHours] | None]
    overrides: DataLoader[tuple[uuid.UUID, date, date], list[DateOverride]]
    time_off_of_staff: DataLoader[tuple[uuid.UUID, uuid.UUID, datetime, datetime], list[TimeOff]]
    history: DataLoader[uuid.UUID, list[BookingChange] | None]

    @classmethod
    def create(cls, engine: AsyncEngine) -> DataLoaders:
        return cls(
            users=users_by_id(engine),
            organizations=organizations_by_id(engine),
            memberships=memberships_by_user(engine),
            services=services_by_id(engine),
            staff=staff_by_id(engine),
            time_off=time_off_by_id(engine),
            staff_ids_of_service=staff_ids_by_service(engine),
            service_ids_of_staff=service_ids_by_staff(engine),
            weekly_hours=weekly_hours_by_staff(engine),
            overrides=overrides_by_staff(engine),
            time_off_of_staff=time_off_by_staff(engine),
            history=history_by_booking(engine),
        )
