from __future__ import annotations

from strawberry.dataloader import DataLoader

from dataloaders.share import Connects
from domain.users import service as users
from domain.users.records import Organization


def organizations_by_slug(engine: Connects) -> DataLoader[str, Organization | None]:
    """Organizations by slug: any number of `organization(slug:)` fields cost one statement."""

    async def load(slugs: list[str]) -> list[Organization | None]:
        async with engine.connect() as conn:
            found = await users.organizations_by_slug(conn, slugs)
        return [found.get(s) for s in slugs]

    return DataLoader(load_fn=load)
