from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from domain.availability import service as availability


def service_ids_by_staff(engine: AsyncEngine) -> DataLoader[uuid.UUID, list[uuid.UUID] | None]:
    return keyed_loader(engine, availability.service_ids_of_staff)
