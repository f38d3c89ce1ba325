"""The Stripe stand-in, driven by the real `stripe` library (16.x): what the app's calls
will meet, including idempotent replays, injected faults and signed webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.stripe_standin import StripeStandIn, serving

SECRET = "whsec_test_secret"


@pytest.fixture(autouse=True)
def no_telemetry_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # stripe 16 otherwise writes ~/.config/stripe/telemetry_id on the first request.
    monkeypatch.setattr(stripe, "enable_telemetry", False)


@pytest.fixture
async def stripe_api() -> AsyncIterator[StripeStandIn]:
    async with StripeStandIn.running() as stand_in:
        yield stand_in


@pytest.fixture
async def client(stripe_api: StripeStandIn) -> AsyncIterator[stripe.StripeClient]:
    async with stripe_api.client() as stripe_client:
        yield stripe_client


def error_of(exception: stripe.StripeError) -> dict[str, Any]:
    """The `error` object of Stripe's answer (json_body is typed `object`)."""
    body = exception.json_body
    assert isinstance(body, dict)
    error: dict[str, Any] = body["error"]
    return error


async def create(
    client: stripe.StripeClient, key: str | None = None, amount: int = 2000
) -> stripe.PaymentIntent:
    return await client.v1.payment_intents.create_async(
        params={
            "amount": amount,
            "currency": "EUR",
            "automatic_payment_methods": {"enabled": True},
            "metadata": {"booking_id": "b-1"},
        },
        options={"idempotency_key": key} if key else None,
    )


async def test_create_retrieve_cancel_round_trip(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = await create(client, "create-1")
    assert intent.id.startswith("pi_")
    assert (intent.amount, intent.currency, intent.status) == (
        2000,
        "eur",
        "requires_payment_method",
    )
    assert intent.client_secret
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.metadata["booking_id"] == "b-1"
    assert (intent.amount_received, intent.latest_charge, intent.livemode) == (0, None, False)
    assert intent.last_response is not None
    assert intent.last_response.idempotency_key == "create-1"  # echoed, as Stripe does

    sent = stripe_api.requests[-1]
    assert (sent.method, sent.path, sent.idempotency_key, sent.status) == (
        "POST",
        "/v1/payment_intents",
        "create-1",
        200,
    )
    assert sent.params == {
        "amount": "2000",
        "currency": "EUR",
        "automatic_payment_methods": {"enabled": "true"},
        "metadata": {"booking_id": "b-1"},
    }

    fetched = await client.v1.payment_intents.retrieve_async(intent.id)
    assert fetched.to_dict() == intent.to_dict() == stripe_api.intent(intent.id)
    assert stripe_api.requests[-1].idempotency_key is None  # the library keys POSTs only

    canceled = await client.v1.payment_intents.cancel_async(
        intent.id, params={"cancellation_reason": "abandoned"}
    )
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    assert stripe_api.requests[-1].idempotency_key  # one of the library's own
    assert stripe_api.created_intents == 1


async def test_refunds_of_a_succeeded_intent_up_to_its_amount(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = await create(client)
    with pytest.raises(stripe.InvalidRequestError) as not_paid:
        await client.v1.refunds.create_async(params={"payment_intent": intent.id})
    assert not_paid.value.http_status == 400

    paid = stripe_api.succeed(intent.id)
    assert paid["latest_charge"].startswith("ch_")
    assert (await client.v1.payment_intents.retrieve_async(intent.id)).amount_received == 2000

    with pytest.raises(stripe.InvalidRequestError) as too_much:
        await client.v1.refunds.create_async(params={"payment_intent": intent.id, "amount": 2001})
    assert too_much.value.code == "amount_too_large"

    part = await client.v1.refunds.create_async(
        params={"payment_intent": intent.id, "amount": 500, "metadata": {"booking_id": "b-1"}}
    )
    assert part.id.startswith("re_")
    assert (part.amount, part.currency, part.status) == (500, "eur", "succeeded")
    assert (part.payment_intent, part.charge) == (intent.id, paid["latest_charge"])
    assert part.to_dict()["metadata"] == {"booking_id": "b-1"}  # StripeObject != dict in 16.x
    assert stripe_api.charge_of(intent.id)["refunded"] is False

    rest = await client.v1.refunds.create_async(params={"payment_intent": intent.id})
    assert rest.amount == 1500  # no amount: what is left
    assert stripe_api.amount_refunded(intent.id) == 2000
    charge = stripe_api.charge_of(intent.id)
    assert (charge["amount_refunded"], charge["refunded"]) == (2000, True)

    with pytest.raises(stripe.InvalidRequestError) as nothing_left:
        await client.v1.refunds.create_async(params={"payment_intent": intent.id, "amount": 1})
    assert nothing_left.value.code == "charge_already_refunded"
    assert stripe_api.created_refunds == 2
    assert (await client.v1.refunds.retrieve_async(part.id)).amount == 500


async def test_states_stripe_refuses_are_errors_of_its_shape(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = await create(client)
    stripe_api.succeed(intent.id)
    with pytest.raises(stripe.InvalidRequestError) as succeeded:
        await client.v1.payment_intents.cancel_async(intent.id)
    assert (succeeded.value.http_status, succeeded.value.code) == (
        400,
        "payment_intent_unexpected_state",
    )
    assert error_of(succeeded.value)["payment_intent"]["status"] == "succeeded"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.payment_intents.retrieve_async("pi_missing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert error_of(missing.value)["type"] == "invalid_request_error"

    async with stripe_api.client("pk_test_not_a_secret_key") as publishable:
        with pytest.raises(stripe.AuthenticationError) as unauthenticated:
            await publishable.v1.payment_intents.retrieve_async(intent.id)
    assert unauthenticated.value.http_status == 401


async def test_declined_and_processing_attempts(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = await create(client)
    stripe_api.fail(intent.id)
    declined = await client.v1.payment_intents.retrieve_async(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.last_payment_error is not None
    assert declined.last_payment_error.code == "card_declined"
    assert declined.last_payment_error.message == "Your card was declined."

    stripe_api.processing(intent.id)
    assert (await client.v1.payment_intents.retrieve_async(intent.id)).status == "processing"
    canceled = await client.v1.payment_intents.cancel_async(intent.id)
    assert canceled.status == "canceled"
    with pytest.raises(ValueError, match="canceled"):
        stripe_api.succeed(intent.id)


async def test_a_replayed_key_returns_the_first_answer_and_creates_nothing(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    first = await create(client, "booking-b-1")
    again = await create(client, "booking-b-1")
    assert again.id == first.id
    assert again.client_secret == first.client_secret
    assert stripe_api.created_intents == 1
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [r.replayed for r in stripe_api.requests] == [False, True]

    # A stored answer is replayed as it was, not as the intent is now.
    stripe_api.succeed(first.id)
    assert (await create(client, "booking-b-1")).status == "requires_payment_method"


async def test_a_key_reused_for_another_request_is_an_idempotency_error(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = await create(client, "key-1")
    with pytest.raises(stripe.IdempotencyError) as other_params:
        await create(client, "key-1", amount=2500)
    assert other_params.value.http_status == 400
    assert error_of(other_params.value)["type"] == "idempotency_error"

    with pytest.raises(stripe.IdempotencyError):
        await client.v1.payment_intents.cancel_async(
            intent.id, options={"idempotency_key": "key-1"}
        )
    assert stripe_api.created_intents == 1
    assert stripe_api.intent(intent.id)["status"] == "requires_payment_method"


async def test_an_injected_500_is_not_saved_so_the_retry_creates_once(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    stripe_api.fail_next()
    with pytest.raises(stripe.APIError) as failed:
        await create(client, "retry-me")
    assert failed.value.http_status == 500
    assert error_of(failed.value)["type"] == "api_error"
    assert stripe_api.created_intents == 0

    intent = await create(client, "retry-me")
    assert stripe_api.created_intents == 1
    assert not stripe_api.requests[-1].replayed
    assert (await create(client, "retry-me")).id == intent.id
    assert stripe_api.created_intents == 1


async def test_failures_aimed_at_a_path_and_a_whole_outage(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    stripe_api.fail_next(count=2, status=503, path_prefix="/v1/refunds")
    intent = await create(client)  # not a refund: untouched
    stripe_api.succeed(intent.id)
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            await client.v1.refunds.create_async(params={"payment_intent": intent.id})
    await client.v1.refunds.create_async(params={"payment_intent": intent.id})

    stripe_api.down()
    with pytest.raises(stripe.APIError) as outage:
        await client.v1.payment_intents.retrieve_async(intent.id)
    assert outage.value.http_status == 503
    stripe_api.up()
    assert (await client.v1.payment_intents.retrieve_async(intent.id)).id == intent.id
    assert [r.status for r in stripe_api.requests] == [200, 503, 503, 200, 503, 200]


async def test_a_hang_is_cut_by_the_caller_and_the_stand_in_still_stops_at_once() -> None:
    started = time.monotonic()
    async with StripeStandIn.running() as stripe_api, stripe_api.client() as client:
        # Held before Stripe sees it: the retry with the same key is the one that creates.
        stripe_api.hang_next(seconds=30)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await create(client, "slow-1")
        assert stripe_api.created_intents == 0
        assert stripe_api.requests[-1].status is None  # still hanging
        intent = await create(client, "slow-1")
        assert stripe_api.created_intents == 1

        # Done, answer lost: the retry with the same key gets the saved answer.
        stripe_api.hang_next(seconds=30, when="after")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await create(client, "slow-2")
        assert stripe_api.created_intents == 2
        replayed = await create(client, "slow-2")
        assert replayed.id != intent.id
        assert stripe_api.requests[-1].replayed
        assert stripe_api.created_intents == 2
    assert time.monotonic() - started < 3  # the hanging requests did not hold the stop


async def test_delivered_webhooks_verify_with_the_library(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    received: list[tuple[bytes, str]] = []

    async def webhook(request: Request) -> Response:
        received.append((await request.body(), request.headers["stripe-signature"]))
        assert request.headers["content-type"] == "application/json"
        return Response(status_code=200)

    intent = await create(client)
    stripe_api.succeed(intent.id)
    event = stripe_api.event_for("payment_intent.succeeded", intent.id, event_id="evt_1")
    receiver = Starlette(routes=[Route("/webhooks/stripe", webhook, methods=["POST"])])
    async with serving(receiver) as receiver_url:
        url = f"{receiver_url}/webhooks/stripe"
        assert (await stripe_api.deliver(url, event, SECRET)).status_code == 200
        old = int(time.time()) - 301
        await stripe_api.deliver(url, event, SECRET, timestamp=old)
        await stripe_api.deliver(url, event, SECRET, signature="t=1,v1=forged")

    (payload, header), (old_payload, old_header), (_, forged) = received
    assert json.loads(payload) == event
    verified = stripe.Webhook.construct_event(payload, header, SECRET, tolerance=300)
    assert (verified.id, verified.type) == ("evt_1", "payment_intent.succeeded")
    assert verified.data.object["id"] == intent.id
    assert verified.data.object["status"] == "succeeded"

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other", tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(old_payload, old_header, SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, forged, SECRET, tolerance=300)


async def test_event_objects_and_signatures(
    stripe_api: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = await create(client)
    stripe_api.fail(intent.id, "Insufficient funds.")
    failed = stripe_api.event_for("payment_intent.payment_failed", intent.id, created=1_700_000_000)
    assert failed["object"] == "event"
    assert (failed["api_version"], failed["created"], failed["livemode"]) == (
        "2024-06-20",
        1_700_000_000,
        False,
    )
    assert failed["request"] == {"id": None, "idempotency_key": None}
    assert failed["data"]["object"]["last_payment_error"]["message"] == "Insufficient funds."

    stripe_api.succeed(intent.id)
    await client.v1.refunds.create_async(params={"payment_intent": intent.id, "amount": 700})
    refunded = stripe_api.event_for("charge.refunded", intent.id)
    charge = refunded["data"]["object"]
    assert {k: charge[k] for k in ("object", "payment_intent", "amount", "amount_refunded")} == {
        "object": "charge",
        "payment_intent": intent.id,
        "amount": 2000,
        "amount_refunded": 700,
    }
    assert (charge["refunded"], charge["currency"]) == (False, "eur")

    payload = b'{"id":"evt_2"}'
    now = int(time.time())
    header = StripeStandIn.sign(payload, SECRET, now - 299)
    assert header.startswith(f"t={now - 299},v1=")
    assert stripe.WebhookSignature.verify_header(payload, header, SECRET, 300)
    expected = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=now
    )
    assert StripeStandIn.sign(payload, SECRET, now) == expected


async def test_the_stock_httpx_client_posts_trip_filterwarnings_error(
    stripe_api: StripeStandIn,
) -> None:
    """Why the stand-in's client() uses FormHTTPXClient: stripe.HTTPXClient passes the form
    body as httpx's deprecated `data=<str>`; under filterwarnings=error every POST fails as
    an APIConnectionError. When this test fails, the library has stopped doing so."""
    http_client = stripe.HTTPXClient()
    client = stripe.StripeClient(
        "sk_test_123",
        base_addresses={"api": stripe_api.base_url},
        http_client=http_client,
        max_network_retries=0,
    )
    try:
        with pytest.raises(stripe.APIConnectionError) as failed:
            await create(client)
        assert isinstance(failed.value.__cause__, DeprecationWarning)
        assert stripe_api.requests == []  # it never left the process
        with pytest.raises(stripe.InvalidRequestError):  # GETs have no body: they get through
            await client.v1.payment_intents.retrieve_async("pi_missing")
    finally:
        await http_client.close_async()  # type: ignore[no-untyped-call]
