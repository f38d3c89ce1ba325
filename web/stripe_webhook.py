"""POST /webhooks/stripe: Stripe's deliveries, verified with STRIPE_WEBHOOK_SECRET and
Stripe's 300 s tolerance. A forged, stale or unreadable delivery gets 400 and changes
nothing; every verified one gets 200 once applied (or seen before, or not ours, or of a
type we do not handle), so Stripe stops retrying it. A failure on our side is a 500:
Stripe delivers it again later, and it is applied once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from domain.payments import service as payments

log = logging.getLogger("booking.payments")

MAX_BODY = 512 * 1024  # Stripe's events are a few KiB


async def stripe_webhook(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"error": "body too large"}, status_code=413)
    provider: payments.PaymentProvider = request.app.state.payments
    try:
        event = provider.verify_event(body, request.headers.get("stripe-signature"))
    except payments.EventRefused as refused:
        log.warning("stripe webhook refused: %s", refused)
        return JSONResponse({"error": "invalid signature or payload"}, status_code=400)
    outcome = await payments.apply_event(
        request.app.state.engine, provider, event, datetime.now(UTC)
    )
    log.info("stripe event %s (%s): %s", event.id, event.type, outcome)
    return JSONResponse({"received": True})


WEBHOOK_ROUTES = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]
