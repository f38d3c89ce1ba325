from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.users import service as users
from domain.users.records import Membership


def memberships_by_user(engine: Connects) -> DataLoader[uuid.UUID, list[Membership] | None]:
    return keyed_loader(engine, users.memberships_of_users)
