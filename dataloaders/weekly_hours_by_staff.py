from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.availability import service as availability
from domain.availability.records import WorkingHours


def weekly_hours_by_staff(
    engine: Connects,
) -> DataLoader[uuid.UUID, list[WorkingHours] | None]:
    return keyed_loader(engine, availability.weekly_hours_of_staff)
