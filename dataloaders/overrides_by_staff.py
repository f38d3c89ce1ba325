from __future__ import annotations

import uuid
from datetime import date

from strawberry.dataloader import DataLoader

from dataloaders.share import Connects
from domain.availability import service as availability
from domain.availability.records import DateOverride

Key = tuple[uuid.UUID, date, date]


def overrides_by_staff(engine: Connects) -> DataLoader[Key, list[DateOverride]]:
    """Date overrides of (staff, first date, last date): one statement per distinct range,
    so a list of staff asking for the same dates costs one."""

    async def load(keys: list[Key]) -> list[list[DateOverride]]:
        ranges: dict[tuple[date, date], list[uuid.UUID]] = {}
        for staff_id, first, last in keys:
            ranges.setdefault((first, last), []).append(staff_id)
        found: dict[Key, list[DateOverride]] = {}
        async with engine.connect() as conn:
            for (first, last), staff_ids in ranges.items():
                rows = await availability.overrides_of_staff(conn, staff_ids, first, last)
                for staff_id, overrides in rows.items():
                    found[(staff_id, first, last)] = overrides
        return [found.get(k, []) for k in keys]

    return DataLoader(load_fn=load)
