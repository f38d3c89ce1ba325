from __future__ import annotations

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.users import service as users
from domain.users.records import Organization


def organizations_by_slug(engine: Connects) -> DataLoader[str, Organization | None]:
    """Organizations by slug: any number of `organization(slug:)` fields cost one statement."""
    return keyed_loader(engine, users.organizations_by_slug)
