"""`node(id)`: any object by its global id, under the same rules as its own field."""

from __future__ import annotations

import strawberry

from domain.booking import service as booking
from infra.ids import from_global_id
from resolvers.access import can_manage_staff
from schema.booking import Booking
from schema.catalog import Organization, Service, Staff, TimeOff
from schema.common import Node
from schema.context import Info
from schema.identity import User


async def node(info: Info, id: strawberry.ID) -> Node | None:
    decoded = from_global_id(id)
    if decoded is None:
        return None
    type_name, key = decoded
    loaders = info.context.loaders
    if type_name == "Organization":
        org = await loaders.organizations.load(key)
        return Organization.of(org) if org else None
    if type_name == "Service":
        service = await loaders.services.load(key)
        return Service.of(service) if service else None
    if type_name == "Staff":
        staff = await loaders.staff.load(key)
        return Staff.of(staff) if staff else None
    if type_name == "TimeOff":
        off = await loaders.time_off.load(key)
        if off is None or off.staff_id is None:
            # Organization-wide closures are public: they shape everyone's availability.
            return TimeOff.of(off) if off else None
        staff = await loaders.staff.load(off.staff_id)
        return TimeOff.of(off) if staff and await can_manage_staff(info, staff) else None
    if type_name == "Booking":
        async with info.context.read() as conn:
            found = await booking.booking_and_roles(conn, key, info.context.viewer_id, None)
        return Booking.as_read_by(*found) if found else None
    if type_name == "User":
        # Only yourself: no leaking of other people's profiles by id.
        if key != info.context.viewer_id:
            return None
        user = await loaders.users.load(key)
        return User.of(user) if user else None
    return None
