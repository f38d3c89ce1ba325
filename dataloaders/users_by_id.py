from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.users import service as users
from domain.users.records import User


def users_by_id(engine: Connects) -> DataLoader[uuid.UUID, User | None]:
    return keyed_loader(engine, users.users_by_id)
