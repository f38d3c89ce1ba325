from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.booking import service as booking
from domain.booking.records import BookingChange


def history_by_booking(engine: Connects) -> DataLoader[uuid.UUID, list[BookingChange] | None]:
    return keyed_loader(engine, booking.history_of)
