"""Paid bookings end to end: the app as a real process configured for Stripe, the real
`stripe` library talking to a loopback stand-in of Stripe's API (tests/stripe_standin.py),
webhooks signed as Stripe signs them. Each failure injected ends with money and bookings
consistent: never CONFIRMED unpaid, never money kept for a slot the customer lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest_asyncio

from infra.ids import key_of
from tests.booking_api import BOOKING_FIELDS, CANCEL, key
from tests.business import Business, Person, create_business, sign_up
from tests.conftest import GraphQLClient
from tests.processes import (
    REDIS_PREFIX,
    Apps,
    forget_keys,
    own_database,
    running_apps,
    shared_redis,
)
from tests.realtime_helpers import data_for, push_where
from tests.stripe_standin import StripeStandIn
from tests.test_availability_api import local, next_weekday
from tests.test_organization_settings import UPDATE as SET_POLICY
from tests.ws_client import socket

WEBHOOK_SECRET = "whsec_test_secret"
PRICE = 4500

PAID_FIELDS = (
    BOOKING_FIELDS
    + """
  payment { id status provider clientSecret failureMessage
            amount { amount currency } refundedAmount { amount currency } }
"""
)
CREATE = f"""
mutation($input: CreateBookingInput!) {{
  createBooking(input: $input) {{
    booking {{ {PAID_FIELDS} }} manageToken errors {{ code field message }}
  }}
}}"""
CONFIRM_PAYMENT = f"""
mutation($id: ID!, $token: String) {{ confirmPayment(bookingId: $id, manageToken: $token) {{
  booking {{ {PAID_FIELDS} }} errors {{ code field message }} }} }}"""
READ = f"""
query($id: ID!, $token: String) {{ booking(id: $id, manageToken: $token) {{ {PAID_FIELDS} }} }}"""
OFFERED = """
query($s: ID!, $from: DateTime!, $to: DateTime!) {
  availability(serviceId: $s, start: $from, end: $to) { slots { start } }
}"""


@dataclass
class World:
    stripe: StripeStandIn
    database_url: str
    redis_url: str
    apps: Apps
    gql: GraphQLClient  # the app with a 10-minute payment window
    quick: GraphQLClient  # the same database, a 3-second window

    def webhook_url(self, index: int = 0) -> str:
        return f"{self.apps.processes[index].base_url}/webhooks/stripe"


def stripe_settings(stripe: StripeStandIn, **more: str) -> dict[str, str]:
    """An app process's environment for Stripe, aimed at the stand-in."""
    return {
        "STRIPE_SECRET_KEY": "sk_test_booking",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_TIMEOUT_SECONDS": "1",
        "STRIPE_API_BASE": stripe.base_url,
        **more,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world() -> AsyncIterator[World]:
    async with (
        StripeStandIn.running() as stripe,
        # Of their own: the session's in-process server pays offline, and would settle
        # these payments with the wrong provider.
        own_database() as database_url,
        # Two processes: the bus that tells each of the other's changes is Redis.
        shared_redis() as redis_url,
        running_apps(
            database_url, count=1, redis_url=redis_url, settings=stripe_settings(stripe)
        ) as slow,
        running_apps(
            database_url,
            count=1,
            redis_url=redis_url,
            settings=stripe_settings(stripe, BOOKING_HOLD_SECONDS="3"),
        ) as quick,
        slow.clients() as [gql],
        quick.clients() as [quick_gql],
    ):
        apps = Apps([*slow.processes, *quick.processes], redis_url, REDIS_PREFIX)
        yield World(stripe, database_url, redis_url, apps, gql, quick_gql)
    await forget_keys(redis_url, REDIS_PREFIX)


async def paid_business(gql: GraphQLClient, **service: Any) -> Business:
    return await create_business(gql, service={"priceAmount": PRICE, **service})


async def refundable_business(gql: GraphQLClient) -> Business:
    """A paid business whose customers are refunded in full whenever they cancel."""
    biz = await paid_business(gql)
    await gql.data(
        SET_POLICY,
        {"input": {"organizationId": biz.org_id, "freeCancellationHours": 0}},
        biz.owner.token,
    )
    return biz


def monday(hour: int) -> str:
    return local(next_weekday(0), hour)


async def book(
    gql: GraphQLClient, biz: Business, who: Person | None, hour: int = 10, **extra: Any
) -> dict[str, Any]:
    input = {
        "serviceId": biz.service_id,
        "start": monday(hour),
        "staffId": biz.staff_ids[0],
        "idempotencyKey": key(),
        **extra,
    }
    if who is None:
        input["guest"] = {"name": "Guest", "email": f"guest-{key()[:8]}@example.com"}
    data = await gql.data(CREATE, {"input": input}, who.token if who else None)
    result: dict[str, Any] = data["createBooking"]
    return result


async def read(
    gql: GraphQLClient, booking_id: str, token: str | None = None, manage: str | None = None
) -> dict[str, Any]:
    data = await gql.data(READ, {"id": booking_id, "token": manage}, token)
    found: dict[str, Any] = data["booking"]
    return found


def intent_id_of(booking: dict[str, Any]) -> str:
    secret: str = booking["payment"]["clientSecret"]
    return secret.split("_secret_")[0]


async def until(check: Any, seconds: float = 10.0) -> Any:
    """Polls `check()` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {found!r}")
        await asyncio.sleep(0.1)


async def offered(gql: GraphQLClient, biz: Business, hour: int) -> bool:
    day = datetime.fromisoformat(local(next_weekday(0), 0))
    data = await gql.data(
        OFFERED,
        {"s": biz.service_id, "from": day.isoformat(), "to": local(next_weekday(0), 23)},
    )
    wanted = datetime.fromisoformat(monday(hour)).astimezone(UTC)
    return any(
        datetime.fromisoformat(s["start"].replace("Z", "+00:00")) == wanted
        for s in data["availability"]["slots"]
    )


async def succeed_by_webhook(world: World, intent_id: str, index: int = 0) -> int:
    world.stripe.succeed(intent_id)
    event = world.stripe.event_for("payment_intent.succeeded", intent_id)
    response = await world.stripe.deliver(world.webhook_url(index), event, WEBHOOK_SECRET)
    return response.status_code


# ---- the happy paths ----------------------------------------------------------------------


async def test_a_paid_booking_waits_for_the_payment_and_a_verified_webhook_confirms_it(
    world: World,
) -> None:
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    made = await book(world.gql, biz, customer)
    assert made["errors"] == []
    booking = made["booking"]
    assert booking["status"] == "PENDING_PAYMENT"
    assert booking["expiresAt"] is not None
    payment = booking["payment"]
    assert payment["status"] == "REQUIRES_PAYMENT"
    assert payment["provider"] == "stripe"
    assert payment["amount"] == {"amount": PRICE, "currency": "EUR"}
    assert payment["refundedAmount"] == {"amount": 0, "currency": "EUR"}
    intent = world.stripe.intent(intent_id_of(booking))
    assert intent["client_secret"] == payment["clientSecret"]
    assert (intent["amount"], intent["currency"]) == (PRICE, "eur")
    assert intent["metadata"]["booking_id"]  # links Stripe's side to ours
    # The owner sees the payment, never its client secret.
    as_owner = await read(world.gql, booking["id"], biz.owner.token)
    assert as_owner["payment"]["clientSecret"] is None

    assert await succeed_by_webhook(world, intent["id"]) == 200
    paid = await read(world.gql, booking["id"], customer.token)
    assert paid["status"] == "CONFIRMED"
    assert paid["expiresAt"] is None
    assert paid["payment"]["status"] == "SUCCEEDED"
    assert paid["payment"]["clientSecret"] is None  # nothing left to pay
    assert [(h["status"], h["actor"]) for h in paid["history"]] == [
        ("PENDING_PAYMENT", "customer"),
        ("CONFIRMED", "payment"),
    ]


async def test_confirm_payment_asks_stripe_and_never_trusts_the_client(world: World) -> None:
    biz = await paid_business(world.gql)
    made = await book(world.gql, biz, None)  # a guest
    booking, token = made["booking"], made["manageToken"]
    assert booking["payment"]["clientSecret"]  # to the guest who made it
    intent_id = intent_id_of(booking)

    data = await world.gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert data["confirmPayment"]["errors"] == []
    assert data["confirmPayment"]["booking"]["status"] == "PENDING_PAYMENT"  # not paid yet

    world.stripe.fail(intent_id)  # the card is declined
    data = await world.gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert [e["code"] for e in data["confirmPayment"]["errors"]] == ["PAYMENT_FAILED"]
    again = await read(world.gql, booking["id"], manage=token)
    assert again["status"] == "PENDING_PAYMENT"  # the customer may try again
    assert again["payment"]["status"] == "FAILED"
    assert again["payment"]["clientSecret"] == booking["payment"]["clientSecret"]

    world.stripe.succeed(intent_id)
    data = await world.gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert data["confirmPayment"]["errors"] == []
    assert data["confirmPayment"]["booking"]["status"] == "CONFIRMED"
    assert data["confirmPayment"]["booking"]["payment"]["status"] == "SUCCEEDED"


async def test_confirm_payment_shows_the_client_secret_to_the_payer_only(world: World) -> None:
    """Whoever may read the booking may ask the server to check its payment; its answer
    shows the client secret to the payer alone (it showed it to whoever asked: the
    staff member or an admin of a booking not paid yet)."""
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    booking = (await book(world.gql, biz, customer))["booking"]
    secret = booking["payment"]["clientSecret"]
    assert secret
    by_owner = await world.gql.data(CONFIRM_PAYMENT, {"id": booking["id"]}, biz.owner.token)
    answer = by_owner["confirmPayment"]
    assert answer["errors"] == []
    assert answer["booking"]["status"] == "PENDING_PAYMENT"  # not paid yet
    assert answer["booking"]["payment"]["clientSecret"] is None
    by_customer = await world.gql.data(CONFIRM_PAYMENT, {"id": booking["id"]}, customer.token)
    assert by_customer["confirmPayment"]["booking"]["payment"]["clientSecret"] == secret


async def test_a_replayed_create_booking_makes_one_payment_intent(world: World) -> None:
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    before = world.stripe.created_intents
    idempotency_key = key()
    first = await book(world.gql, biz, customer, idempotencyKey=idempotency_key)
    second = await book(world.gql, biz, customer, idempotencyKey=idempotency_key)
    assert first["booking"]["id"] == second["booking"]["id"]
    assert (
        second["booking"]["payment"]["clientSecret"] == first["booking"]["payment"]["clientSecret"]
    )
    assert world.stripe.created_intents == before + 1


# ---- webhooks -----------------------------------------------------------------------------


async def test_forged_and_stale_webhooks_are_refused_and_change_nothing(world: World) -> None:
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    booking = (await book(world.gql, biz, customer))["booking"]
    intent_id = intent_id_of(booking)
    # A success Stripe never saw (the customer has not paid), claimed three ways.
    claimed = world.stripe.event(
        "payment_intent.succeeded",
        {**world.stripe.intent(intent_id), "status": "succeeded", "amount_received": PRICE},
    )
    forged = await world.stripe.deliver(world.webhook_url(), claimed, "whsec_someone_else")
    stale = await world.stripe.deliver(
        world.webhook_url(), claimed, WEBHOOK_SECRET, timestamp=int(time.time()) - 301
    )
    garbled = await world.stripe.deliver(
        world.webhook_url(), claimed, WEBHOOK_SECRET, signature=f"t={int(time.time())},v1=00"
    )
    assert [forged.status_code, stale.status_code, garbled.status_code] == [400, 400, 400]
    assert (await read(world.gql, booking["id"], customer.token))["status"] == "PENDING_PAYMENT"
    # The customer pays; Stripe's genuine delivery, once.
    world.stripe.succeed(intent_id)
    event = world.stripe.event_for("payment_intent.succeeded", intent_id)
    ok = await world.stripe.deliver(world.webhook_url(), event, WEBHOOK_SECRET)
    assert ok.status_code == 200
    assert (await read(world.gql, booking["id"], customer.token))["status"] == "CONFIRMED"


async def test_duplicates_and_old_failures_never_move_a_payment_backwards(world: World) -> None:
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    booking = (await book(world.gql, biz, customer))["booking"]
    intent_id = intent_id_of(booking)
    world.stripe.fail(intent_id)
    failure = world.stripe.event_for(
        "payment_intent.payment_failed", intent_id, created=int(time.time()) - 5
    )
    world.stripe.succeed(intent_id)
    success = world.stripe.event_for("payment_intent.succeeded", intent_id)
    url = world.webhook_url()
    # Out of order and twice: the success, the success again, then the older failure.
    for event in (success, success, failure, failure):
        assert (await world.stripe.deliver(url, event, WEBHOOK_SECRET)).status_code == 200
    paid = await read(world.gql, booking["id"], customer.token)
    assert paid["status"] == "CONFIRMED"
    assert paid["payment"]["status"] == "SUCCEEDED"
    assert [h["status"] for h in paid["history"]] == ["PENDING_PAYMENT", "CONFIRMED"]
    unknown = world.stripe.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await world.stripe.deliver(url, unknown, WEBHOOK_SECRET)).status_code == 200


# ---- Stripe failing -----------------------------------------------------------------------


async def test_stripe_down_leaves_no_reservation_and_the_same_request_works_later(
    world: World,
) -> None:
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    idempotency_key = key()
    # Every try at creating the intent fails (an outage aimed at this request alone: the
    # reconciliation's calls in the background, failing too, could open the circuit and
    # fail the retry below for 30 s; test_an_outage_opens_the_circuit covers that).
    world.stripe.fail_next(count=3, status=503, path="/v1/payment_intents", method="POST")
    try:
        failed = await book(world.gql, biz, customer, idempotencyKey=idempotency_key)
    finally:
        world.stripe.heal()
    assert [e["code"] for e in failed["errors"]] == ["PAYMENT_PROVIDER_UNAVAILABLE"]
    assert failed["booking"] is None
    assert await offered(world.gql, biz, 10)  # the slot is free again
    retried = await book(world.gql, biz, customer, idempotencyKey=idempotency_key)
    assert retried["errors"] == []
    assert retried["booking"]["status"] == "PENDING_PAYMENT"


async def test_a_hanging_stripe_is_cut_by_the_timeout(world: World) -> None:
    biz = await paid_business(world.gql)
    customer = await sign_up(world.gql)
    world.stripe.hang_next(count=10, seconds=30.0, path="/v1/payment_intents", method="POST")
    started = time.monotonic()
    try:
        failed = await book(world.gql, biz, customer)
    finally:
        world.stripe.heal()
    elapsed = time.monotonic() - started
    assert [e["code"] for e in failed["errors"]] == ["PAYMENT_PROVIDER_UNAVAILABLE"]
    assert elapsed < 8.0, elapsed  # 3 tries of 1 s and their pauses, not 30 s
    assert await offered(world.gql, biz, 10)


# ---- expiry and compensation ------------------------------------------------------------


async def test_an_unpaid_booking_expires_frees_its_slot_and_cancels_its_intent(
    world: World,
) -> None:
    biz = await paid_business(world.quick)
    customer = await sign_up(world.quick)
    booking = (await book(world.quick, biz, customer))["booking"]
    intent_id = intent_id_of(booking)
    assert not await offered(world.quick, biz, 10)

    async def expired() -> bool:
        found = await read(world.quick, booking["id"], customer.token)
        return bool(found["status"] == "EXPIRED")

    await until(expired, seconds=25.0)  # the sweep runs every 15 s
    # The sweep may have run in the other process: this one hears of it over the bus.
    await until(lambda: offered(world.quick, biz, 10), seconds=2.0)

    async def cancelled() -> bool:
        return bool(world.stripe.intent(intent_id)["status"] == "canceled")

    await until(cancelled)
    found = await read(world.quick, booking["id"], customer.token)
    assert found["payment"]["status"] == "CANCELED"
    assert found["history"][-1]["actor"] == "system"


async def test_a_success_after_the_deadline_is_refunded_and_the_booking_stays_expired(
    world: World,
) -> None:
    biz = await paid_business(world.quick)
    customer = await sign_up(world.quick)
    booking = (await book(world.quick, biz, customer))["booking"]
    intent_id = intent_id_of(booking)
    # Our cancellation cannot reach Stripe: the customer's late payment goes through.
    world.stripe.fail_next(count=1000, path_prefix=f"/v1/payment_intents/{intent_id}/cancel")
    try:
        await asyncio.sleep(3.2)  # past the 3-second window
        assert await succeed_by_webhook(world, intent_id, index=1) == 200

        async def refunded() -> dict[str, Any] | None:
            found = await read(world.quick, booking["id"], customer.token)
            return found if found["payment"]["status"] == "REFUNDED" else None

        found = await until(refunded)
    finally:
        world.stripe.heal()
    assert found["status"] == "EXPIRED"
    assert found["payment"]["refundedAmount"] == {"amount": PRICE, "currency": "EUR"}
    assert world.stripe.amount_refunded(intent_id) == PRICE  # one refund, in full


async def paid_and_confirmed(world: World, biz: Business, who: Person, hour: int) -> dict[str, Any]:
    booking: dict[str, Any] = (await book(world.gql, biz, who, hour=hour))["booking"]
    assert await succeed_by_webhook(world, intent_id_of(booking)) == 200
    return booking


async def refunded_amount(world: World, booking_id: str, token: str, wanted: int) -> int:
    async def settled() -> int | None:
        found = await read(world.gql, booking_id, token)
        amount = int(found["payment"]["refundedAmount"]["amount"])
        return amount if amount == wanted else None

    with contextlib.suppress(AssertionError):
        return int(await until(settled, seconds=5.0))
    found = await read(world.gql, booking_id, token)
    return int(found["payment"]["refundedAmount"]["amount"])


async def test_refunds_follow_the_policy_changed_on_another_process(world: World) -> None:
    biz = await paid_business(world.gql, capacity=1)
    customer = await sign_up(world.gql)
    # Mondays are within 30 days: "late" under a 720-hour free-cancellation window.
    changed = await world.quick.data(
        SET_POLICY,
        {
            "input": {
                "organizationId": biz.org_id,
                "freeCancellationHours": 720,
                "lateCancellationRefundPercent": 50,
            }
        },
        biz.owner.token,
    )
    assert changed["updateOrganizationSettings"]["errors"] == []
    late = await paid_and_confirmed(world, biz, customer, 10)
    cancel = {"input": {"bookingId": late["id"]}}
    assert (await world.gql.data(CANCEL, cancel, customer.token))["cancelBooking"]["errors"] == []
    assert await refunded_amount(world, late["id"], customer.token, PRICE // 2) == PRICE // 2

    # The business cancelling refunds in full, whatever the policy.
    by_business = await paid_and_confirmed(world, biz, customer, 11)
    cancel = {"input": {"bookingId": by_business["id"]}}
    assert (await world.gql.data(CANCEL, cancel, biz.owner.token))["cancelBooking"]["errors"] == []
    assert await refunded_amount(world, by_business["id"], customer.token, PRICE) == PRICE
    found = await read(world.gql, by_business["id"], customer.token)
    assert found["payment"]["status"] == "REFUNDED"

    # In time (a window of 0 hours): in full.
    await world.quick.data(
        SET_POLICY,
        {"input": {"organizationId": biz.org_id, "freeCancellationHours": 0}},
        biz.owner.token,
    )
    in_time = await paid_and_confirmed(world, biz, customer, 12)
    cancel = {"input": {"bookingId": in_time["id"]}}
    assert (await world.gql.data(CANCEL, cancel, customer.token))["cancelBooking"]["errors"] == []
    assert await refunded_amount(world, in_time["id"], customer.token, PRICE) == PRICE


# ---- live: bookingChanged ------------------------------------------------------------------

PAYMENT_CHANGED = """
subscription($id: ID!, $token: String) {
  bookingChanged(bookingId: $id, manageToken: $token) {
    id status expiresAt payment { status clientSecret }
  }
}"""


async def test_a_subscriber_sees_pending_payment_become_confirmed_when_stripe_says_so(
    world: World,
) -> None:
    biz = await paid_business(world.gql)
    made = await book(world.gql, biz, None)  # a guest, watching from the payment page
    booking, token = made["booking"], made["manageToken"]
    async with socket(world.apps.processes[0].base_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        sid = await ws.subscribe(PAYMENT_CHANGED, {"id": booking["id"], "token": token})
        seen = (await data_for(ws, sid))["data"]["bookingChanged"]
        assert seen["status"] == "PENDING_PAYMENT"
        assert seen["payment"] == {
            "status": "REQUIRES_PAYMENT",
            "clientSecret": booking["payment"]["clientSecret"],
        }
        # Stripe's webhook reaches the other process; the change is pushed from this one.
        assert await succeed_by_webhook(world, intent_id_of(booking), index=1) == 200
        pushed, _ = await push_where(
            ws, sid, lambda p: p["data"]["bookingChanged"]["status"] != "PENDING_PAYMENT"
        )
        assert pushed["data"]["bookingChanged"] == {
            "id": booking["id"],
            "status": "CONFIRMED",
            "expiresAt": None,
            "payment": {"status": "SUCCEEDED", "clientSecret": None},
        }


# ---- crashes and outages -------------------------------------------------------------------


async def stored_status(database_url: str, booking_id: str) -> tuple[str, str]:
    """The booking's and its payment's status as stored: what a process that died left."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT b.status, p.status AS paid FROM bookings b JOIN payments p"
            " ON p.booking_id = b.id WHERE b.id = $1",
            key_of(booking_id, "Booking"),
        )
    finally:
        await connection.close()
    assert row is not None
    return str(row["status"]), str(row["paid"])


async def test_a_server_killed_between_stripes_success_and_ours_confirms_after_restart(
    world: World,
) -> None:
    settings = stripe_settings(world.stripe)
    async with own_database() as database_url:  # no other process to heal it meanwhile
        async with (
            running_apps(database_url, count=1, redis_url=None, settings=settings) as first,
            first.clients() as [gql],
        ):
            biz = await paid_business(gql)
            customer = await sign_up(gql)
            booking = (await book(gql, biz, customer))["booking"]
            intent_id = intent_id_of(booking)
            # The customer pays; Stripe's webhook is lost. The payment page asks us, and
            # the server dies while Stripe's answer is on its way.
            world.stripe.succeed(intent_id)
            path = f"/v1/payment_intents/{intent_id}"
            world.stripe.hang_next(seconds=30.0, path=path, method="GET")
            asked = len(world.stripe.requests)
            confirming = asyncio.create_task(
                gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": None}, customer.token)
            )

            async def retrieving() -> bool:
                return any(r.path == path for r in world.stripe.requests[asked:])

            await until(retrieving)
            first.processes[0].popen.kill()
            with contextlib.suppress(httpx.TransportError):
                await confirming
                raise AssertionError("the killed server answered")
        assert await stored_status(database_url, booking["id"]) == (
            "PENDING_PAYMENT",
            "REQUIRES_PAYMENT",
        )
        async with (
            running_apps(database_url, count=1, redis_url=None, settings=settings) as second,
            second.clients() as [gql],
        ):

            async def confirmed() -> dict[str, Any] | None:
                found = await read(gql, booking["id"], customer.token)
                return found if found["status"] == "CONFIRMED" else None

            found = await until(confirmed, seconds=30.0)  # a reconciliation runs every 20 s
    assert found["payment"]["status"] == "SUCCEEDED"
    assert [(h["status"], h["actor"]) for h in found["history"]] == [
        ("PENDING_PAYMENT", "customer"),
        ("CONFIRMED", "payment"),
    ]
    assert world.stripe.amount_refunded(intent_id) == 0  # the slot was kept: nothing owed


async def test_an_outage_opens_the_circuit_as_the_logs_and_readyz_say(world: World) -> None:
    # A process of its own: its circuit stays open for 30 s after this test.
    async with (
        running_apps(
            world.database_url,
            count=1,
            redis_url=world.redis_url,
            settings=stripe_settings(world.stripe),
        ) as apps,
        apps.clients() as [gql],
        httpx.AsyncClient(base_url=apps.processes[0].base_url) as http,
    ):
        biz = await paid_business(gql)
        customer = await sign_up(gql)
        ready = await http.get("/readyz")
        assert ready.json()["payments"] == {"provider": "stripe", "circuit": "closed"}
        world.stripe.fail_next(count=100, status=503, path="/v1/payment_intents", method="POST")
        try:
            for hour in (10, 11):  # 3 tries each: the fifth failure in a row opens it
                failed = await book(gql, biz, customer, hour=hour)
                assert [e["code"] for e in failed["errors"]] == ["PAYMENT_PROVIDER_UNAVAILABLE"]
            ready = await http.get("/readyz")
            assert ready.status_code == 200  # no reason to leave the load balancer
            assert ready.json()["payments"] == {"provider": "stripe", "circuit": "opened"}
            assert "Stripe unavailable: circuit opened" in apps.logs()
            # While it is open a paid booking fails at once, without a call to Stripe.
            creates = world.stripe.created_intents
            tried = sum(r.path == "/v1/payment_intents" for r in world.stripe.requests)
            started = time.monotonic()
            failed = await book(gql, biz, customer, hour=12)
            assert [e["code"] for e in failed["errors"]] == ["PAYMENT_PROVIDER_UNAVAILABLE"]
            assert time.monotonic() - started < 1.0
            assert sum(r.path == "/v1/payment_intents" for r in world.stripe.requests) == tried
            assert world.stripe.created_intents == creates
        finally:
            world.stripe.heal()
        for hour in (10, 11, 12):
            assert await offered(gql, biz, hour)  # no reservation left behind
