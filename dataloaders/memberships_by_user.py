from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from domain.users import service as users
from domain.users.records import Membership


def memberships_by_user(engine: AsyncEngine) -> DataLoader[uuid.UUID, list[Membership] | None]:
    return keyed_loader(engine, users.memberships_of_users)
