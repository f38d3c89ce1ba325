from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.availability import service as availability


def service_ids_by_staff(engine: Connects) -> DataLoader[uuid.UUID, list[uuid.UUID] | None]:
    return keyed_loader(engine, availability.service_ids_of_staff)
