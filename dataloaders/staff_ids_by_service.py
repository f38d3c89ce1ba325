from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.availability import service as availability


def staff_ids_by_service(engine: Connects) -> DataLoader[uuid.UUID, list[uuid.UUID] | None]:
    return keyed_loader(engine, availability.staff_ids_of_services)
