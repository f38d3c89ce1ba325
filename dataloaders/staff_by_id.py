from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.availability import service as availability
from domain.availability.records import Staff


def staff_by_id(engine: Connects) -> DataLoader[uuid.UUID, Staff | None]:
    return keyed_loader(engine, availability.staff_by_id)
