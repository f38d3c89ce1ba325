from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from domain.availability import service as availability
from domain.availability.records import WorkingHours


def weekly_hours_by_staff(
    engine: AsyncEngine,
) -> DataLoader[uuid.UUID, list[WorkingHours] | None]:
    return keyed_loader(engine, availability.weekly_hours_of_staff)
