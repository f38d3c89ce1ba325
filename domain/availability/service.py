"""The availability domain's public API: the catalog, schedules and offered slots.

Callers import this module only; the work is done in the modules named for it:

* catalog.py: services and staff (create_service, add_staff, link_staff_user);
* schedules.py: weekly hours, date overrides and time off;
* reads.py: batched reads by many keys, for the dataloaders, and the pages;
* offer.py: the offered slots of a window (`availability`, four SQL statements).
"""

from __future__ import annotations

from domain.availability.catalog import (
    MAX_DURATION_MINUTES,
    ServiceDraft,
    add_staff,
    create_service,
    link_staff_user,
)
from domain.availability.offer import (
    MAX_WINDOW,
    CalendarInputs,
    ClaimsLoader,
    Offer,
    availability,
    check_window,
    rules_of,
)
from domain.availability.reads import (
    overrides_of_staff,
    service_by_id,
    service_ids_of_staff,
    services_by_id,
    services_page,
    staff_by_id,
    staff_emails,
    staff_ids_of_services,
    staff_ids_of_user,
    staff_page,
    time_off_by_id,
    time_off_in,
    weekly_hours_of_staff,
)
from domain.availability.schedules import add_time_off, set_date_override, set_weekly_schedule

__all__ = [
    "MAX_DURATION_MINUTES",
    "MAX_WINDOW",
    "CalendarInputs",
    "ClaimsLoader",
    "Offer",
    "ServiceDraft",
    "add_staff",
    "add_time_off",
    "availability",
    "check_window",
    "create_service",
    "link_staff_user",
    "overrides_of_staff",
    "rules_of",
    "service_by_id",
    "service_ids_of_staff",
    "services_by_id",
    "services_page",
    "set_date_override",
    "set_weekly_schedule",
    "staff_by_id",
    "staff_emails",
    "staff_ids_of_services",
    "staff_ids_of_user",
    "staff_page",
    "time_off_by_id",
    "time_off_in",
    "weekly_hours_of_staff",
]
