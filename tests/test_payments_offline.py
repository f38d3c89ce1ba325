"""The offline provider of the embedded default (no STRIPE_SECRET_KEY): the same states
as Stripe, so the whole flow can be tried in GraphiQL: a guest books a paid service,
sees PENDING_PAYMENT, "pays" with confirmPayment and is refunded by policy."""

from __future__ import annotations

from typing import Any

from tests.booking_api import CANCEL
from tests.conftest import GraphQLClient
from tests.test_payments import (
    CONFIRM_PAYMENT,
    PRICE,
    book,
    paid_business,
    read,
    refundable_business,
    until,
)


async def until_refunded(gql: GraphQLClient, booking_id: str, token: str) -> dict[str, Any]:
    """The booking's payment once the settler has refunded it."""

    async def refunded() -> dict[str, Any] | None:
        found = await read(gql, booking_id, manage=token)
        return found["payment"] if found["payment"]["status"] == "REFUNDED" else None

    payment: dict[str, Any] = await until(refunded)
    return payment


async def test_a_guest_pays_in_test_mode_and_a_cancellation_in_time_refunds_in_full(
    gql: GraphQLClient,
) -> None:
    biz = await refundable_business(gql)
    made = await book(gql, biz, None)
    booking, token = made["booking"], made["manageToken"]
    assert booking["status"] == "PENDING_PAYMENT"
    assert booking["payment"]["provider"] == "offline"
    assert booking["payment"]["clientSecret"]
    # Without the manage token, a stranger learns nothing and pays nothing.
    refused = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": None})
    assert [e["code"] for e in refused["confirmPayment"]["errors"]] == ["NOT_FOUND"]

    paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert paid["confirmPayment"]["errors"] == []
    assert paid["confirmPayment"]["booking"]["status"] == "CONFIRMED"
    assert paid["confirmPayment"]["booking"]["payment"]["status"] == "SUCCEEDED"

    cancel = {"input": {"bookingId": booking["id"], "manageToken": token}}
    assert (await gql.data(CANCEL, cancel))["cancelBooking"]["errors"] == []

    payment = await until_refunded(gql, booking["id"], token)
    assert payment["refundedAmount"] == {"amount": PRICE, "currency": "EUR"}


async def test_a_declined_paid_booking_is_refunded_in_full(gql: GraphQLClient) -> None:
    biz = await paid_business(gql, requiresConfirmation=True)
    made = await book(gql, biz, None)
    booking, token = made["booking"], made["manageToken"]
    paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    # Paid, then the business decides: never charged for a booking it turns down.
    assert paid["confirmPayment"]["booking"]["status"] == "PENDING_CONFIRMATION"
    declined = await gql.data(
        "mutation($id: ID!) { declineBooking(bookingId: $id) { errors { code } } }",
        {"id": booking["id"]},
        biz.owner.token,
    )
    assert declined["declineBooking"]["errors"] == []

    payment = await until_refunded(gql, booking["id"], token)
    assert payment["refundedAmount"] == {"amount": PRICE, "currency": "EUR"}
