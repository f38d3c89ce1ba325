from __future__ import annotations

import uuid
from datetime import datetime

from strawberry.dataloader import DataLoader

from dataloaders.share import Connects
from domain.availability import service as availability
from domain.availability.records import TimeOff

# (staff, its organization, start, end): the organization's closures count too.
Key = tuple[uuid.UUID, uuid.UUID, datetime, datetime]


def time_off_by_staff(engine: Connects) -> DataLoader[Key, list[TimeOff]]:
    """Time off overlapping [start, end) of a staff member, organization-wide closures
    included: one statement per distinct (organization, range)."""

    async def load(keys: list[Key]) -> list[list[TimeOff]]:
        ranges: dict[tuple[uuid.UUID, datetime, datetime], list[uuid.UUID]] = {}
        for staff_id, org_id, start, end in keys:
            ranges.setdefault((org_id, start, end), []).append(staff_id)
        found: dict[Key, list[TimeOff]] = {}
        async with engine.connect() as conn:
            for (org_id, start, end), staff_ids in ranges.items():
                rows = await availability.time_off_in(conn, staff_ids, start, end, org_id)
                for staff_id in staff_ids:
                    found[(staff_id, org_id, start, end)] = [
                        t for t in rows if t.staff_id in (None, staff_id)
                    ]
        return [found.get(k, []) for k in keys]

    return DataLoader(load_fn=load)
