from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from dataloaders.base import keyed_loader
from dataloaders.share import Connects
from domain.payments import service as payments
from domain.payments.records import Payment


def payments_by_booking(engine: Connects) -> DataLoader[uuid.UUID, Payment | None]:
    return keyed_loader(engine, payments.payments_of_bookings)
