from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.users import service as users
from domain.users.records import Organization


def organizations_by_id(engine: Connects) -> DataLoader[uuid.UUID, Organization | None]:
    return keyed_loader(engine, users.organizations_by_id)
