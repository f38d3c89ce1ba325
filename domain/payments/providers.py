"""Which provider this deployment uses: Stripe when STRIPE_SECRET_KEY is set, else the
offline one."""

from __future__ import annotations

from domain.payments.offline import OfflineProvider
from domain.payments.provider import PaymentProvider
from domain.payments.stripe_provider import StripeProvider
from infra.settings import Settings


def provider_from_settings(settings: Settings) -> PaymentProvider:
    if settings.stripe_secret_key:
        return StripeProvider(
            settings.stripe_secret_key,
            settings.stripe_webhook_secret,
            settings.stripe_api_base,
            settings.stripe_timeout_seconds,
        )
    return OfflineProvider()
