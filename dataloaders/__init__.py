"""Per-request batch loaders: one field that loads related rows costs one statement
per batch, not one per parent. Created afresh for every request (and, for
subscriptions, every event), so nothing cached outlives what it describes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from functools import cached_property

from strawberry.dataloader import DataLoader

from dataloaders.history_by_booking import history_by_booking
from dataloaders.memberships_by_user import memberships_by_user
from dataloaders.organizations_by_id import organizations_by_id
from dataloaders.organizations_by_slug import organizations_by_slug
from dataloaders.overrides_by_staff import overrides_by_staff
from dataloaders.payments_by_booking import payments_by_booking
from dataloaders.service_ids_by_staff import service_ids_by_staff
from dataloaders.services_by_id import services_by_id
from dataloaders.share import Connects
from dataloaders.staff_by_id import staff_by_id
from dataloaders.staff_ids_by_service import staff_ids_by_service
from dataloaders.time_off_by_id import time_off_by_id
from dataloaders.time_off_by_staff import time_off_by_staff
from dataloaders.users_by_id import users_by_id
from dataloaders.weekly_hours_by_staff import weekly_hours_by_staff
from domain.availability.records import DateOverride, Service, Staff, TimeOff, WorkingHours
from domain.booking.records import BookingChange
from domain.payments.records import Payment
from domain.users.records import Membership, Organization, User


class DataLoaders:
    """The loaders of one request (or one subscription event). Each is made on first
    use: most requests need two or three of them."""

    def __init__(self, engine: Connects) -> None:
        self._engine = engine

    @classmethod
    def create(cls, engine: Connects) -> DataLoaders:
        return cls(engine)

    @cached_property
    def users(self) -> DataLoader[uuid.UUID, User | None]:
        return users_by_id(self._engine)

    @cached_property
    def organizations(self) -> DataLoader[uuid.UUID, Organization | None]:
        return organizations_by_id(self._engine)

    @cached_property
    def organizations_by_slug(self) -> DataLoader[str, Organization | None]:
        return organizations_by_slug(self._engine)

    @cached_property
    def memberships(self) -> DataLoader[uuid.UUID, list[Membership] | None]:
        return memberships_by_user(self._engine)

    @cached_property
    def services(self) -> DataLoader[uuid.UUID, Service | None]:
        return services_by_id(self._engine)

    @cached_property
    def staff(self) -> DataLoader[uuid.UUID, Staff | None]:
        return staff_by_id(self._engine)

    @cached_property
    def time_off(self) -> DataLoader[uuid.UUID, TimeOff | None]:
        return time_off_by_id(self._engine)

    @cached_property
    def staff_ids_of_service(self) -> DataLoader[uuid.UUID, list[uuid.UUID] | None]:
        return staff_ids_by_service(self._engine)

    @cached_property
    def service_ids_of_staff(self) -> DataLoader[uuid.UUID, list[uuid.UUID] | None]:
        return service_ids_by_staff(self._engine)

    @cached_property
    def weekly_hours(self) -> DataLoader[uuid.UUID, list[WorkingHours] | None]:
        return weekly_hours_by_staff(self._engine)

    @cached_property
    def overrides(self) -> DataLoader[tuple[uuid.UUID, date, date], list[DateOverride]]:
        return overrides_by_staff(self._engine)

    @cached_property
    def time_off_of_staff(
        self,
    ) -> DataLoader[tuple[uuid.UUID, uuid.UUID, datetime, datetime], list[TimeOff]]:
        return time_off_by_staff(self._engine)

    @cached_property
    def history(self) -> DataLoader[uuid.UUID, list[BookingChange] | None]:
        return history_by_booking(self._engine)

    @cached_property
    def payments(self) -> DataLoader[uuid.UUID, Payment | None]:
        return payments_by_booking(self._engine)
