from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from domain.users import service as users
from domain.users.records import User


def users_by_id(engine: AsyncEngine) -> DataLoader[uuid.UUID, User | None]:
    return keyed_loader(engine, users.users_by_id)
