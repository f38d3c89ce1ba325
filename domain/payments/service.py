"""The payments domain's public API: the resolvers, the webhook route, the jobs and the
app import from here; the work is done in the modules named for it."""

from __future__ import annotations

from domain.payments.provider import EventRefused, PaymentProvider, ProviderEvent
from domain.payments.providers import provider_from_settings
from domain.payments.reconciliation import reconcile, settle_changed
from domain.payments.records import Payment, PaymentStatus
from domain.payments.saga import apply_event, book, confirm_payment, settle
from domain.payments.store import payments_of_bookings

__all__ = [
    "EventRefused",
    "Payment",
    "PaymentProvider",
    "PaymentStatus",
    "ProviderEvent",
    "apply_event",
    "book",
    "confirm_payment",
    "payments_of_bookings",
    "provider_from_settings",
    "reconcile",
    "settle",
    "settle_changed",
]
