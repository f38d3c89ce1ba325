"""The live slot board (/demo) in Debian's Chromium, offline: two pages watch the same
week of a business; a slot booked in one, or over the API by someone else, vanishes
from every open board within seconds; the booking dialog names the day that was clicked.
A paid service shows its price; its guest booking waits for payment, is paid with
"Pay (test mode)" (offline provider) or, with Stripe, confirmed by the webhook, and the
page hears the new status live."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.booking_api import create
from tests.browser import Offline, chromium, offline_context
from tests.business import Business, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.demo_seed import seed_demo
from tests.processes import own_database, running_apps
from tests.stripe_standin import StripeStandIn
from tests.test_payments import CONFIRM_PAYMENT, WEBHOOK_SECRET, intent_id_of, read
from tests.test_payments import stripe_settings as stripe_configured

SLOTS_A_WEEK = 5 * 16  # Mon-Fri 09:00-17:00, 30-minute slots, one staff member
PUSH_WITHIN = 5_000  # ms
PRICE = 6000  # EUR 60.00
BOOKINGS = """
query($slug: String!) { organization(slug: $slug) { bookings(first: 10) { edges { node {
  id reference status expiresAt payment { status provider } } } } } }"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@dataclass
class Boards:
    context: BrowserContext
    offline: Offline

    async def open(self, slug: str) -> Page:
        """The board of next week (past any minimum notice), once its first snapshot
        is drawn: the subscription is then live on the server."""
        page = await self.context.new_page()
        response = await page.goto(f"{self.offline.base_url}/demo?business={slug}&week=1")
        assert response is not None
        assert response.status == 200
        await expect(page.locator("#board"), self.offline.explain()).to_have_attribute(
            "data-slots", str(SLOTS_A_WEEK)
        )
        await expect(page.locator("#status")).to_have_text("live")
        return page


@asynccontextmanager
async def boards_at(browser: Browser, base_url: str) -> AsyncIterator[Boards]:
    # The page's Content-Security-Policy stays in force: the test reads the page with
    # locators, never by evaluating strings in it.
    async with offline_context(browser, base_url) as (context, offline):
        yield Boards(context, offline)
        assert offline.elsewhere == [], "the board tried to reach another host"
        assert offline.failures == []


@pytest.fixture
async def boards(browser: Browser, server: Server) -> AsyncIterator[Boards]:
    async with boards_at(browser, server.base_url) as boards:
        yield boards


async def version(page: Page) -> int:
    return int(await page.locator("#board").get_attribute("data-version") or "0")


def slot(page: Page, start: str) -> Locator:
    return page.locator(f'button.slot[data-start="{start}"]')


async def choose(page: Page, chosen: Locator) -> None:
    """Clicks the slot `chosen`: the booking dialog opens."""
    await chosen.click()
    await expect(page.locator("#book")).to_be_visible()


async def book_as_guest(page: Page) -> str:
    """Books the slot of the open dialog; the reference the page then shows."""
    await page.locator("#guest-name").fill("Grace Guest")
    await page.locator("#guest-email").fill("grace@example.com")
    await page.locator("#book-submit").click()
    booked = page.locator("#booked")
    await expect(booked).to_be_visible(timeout=PUSH_WITHIN)
    reference = await booked.get_attribute("data-reference")
    assert reference
    await expect(booked).to_contain_text(reference)
    await expect(page.locator("#book")).to_be_hidden()
    return reference


async def test_a_slot_booked_on_one_board_vanishes_from_another(
    gql: GraphQLClient, boards: Boards
) -> None:
    biz = await create_business(gql)
    a = await boards.open(biz.slug)
    b = await boards.open(biz.slug)
    chosen = a.locator("button.slot").nth(3)
    start = await chosen.get_attribute("data-start")
    assert start
    b_slot = slot(b, start)
    await expect(b_slot).to_have_count(1)
    b_version = await version(b)

    await choose(a, chosen)
    await book_as_guest(a)

    await expect(b_slot).to_have_count(0, timeout=PUSH_WITHIN)
    assert await version(b) > b_version
    await expect(b.locator("#board")).to_have_attribute("data-slots", str(SLOTS_A_WEEK - 1))
    await expect(slot(a, start)).to_have_count(0, timeout=PUSH_WITHIN)
    await expect(a.locator("#board")).to_have_attribute("data-slots", str(SLOTS_A_WEEK - 1))


async def test_a_slot_booked_over_the_api_vanishes_from_an_open_board(
    gql: GraphQLClient, boards: Boards
) -> None:
    biz = await create_business(gql)
    page = await boards.open(biz.slug)
    start = await page.locator("button.slot").last.get_attribute("data-start")
    assert start
    before = await version(page)

    customer = await sign_up(gql)
    result = await create(gql, customer.token, serviceId=biz.service_id, start=start)
    assert result["errors"] == [], result
    assert result["booking"]["start"] == start

    await expect(slot(page, start)).to_have_count(0, timeout=PUSH_WITHIN)
    assert await version(page) > before
    await expect(page.locator("#board")).to_have_attribute("data-slots", str(SLOTS_A_WEEK - 1))


async def test_the_booking_dialog_names_the_day_of_the_column_clicked(
    gql: GraphQLClient, boards: Boards
) -> None:
    # In Auckland (UTC+12/+13) a morning slot starts on the previous day in UTC.
    biz = await create_business(gql, time_zone="Pacific/Auckland")
    page = await boards.open(biz.slug)
    monday = page.locator("section.day").first
    day = await monday.locator("h2").text_content()
    assert day
    await monday.locator("button.slot").first.click()
    await expect(page.locator("#book-when")).to_contain_text(day)
    await expect(page.locator("#zone")).to_have_text("Times in Pacific/Auckland")


async def test_a_missing_business_says_how_to_seed_it_and_is_not_live(boards: Boards) -> None:
    page = await boards.context.new_page()
    await page.goto(f"{boards.offline.base_url}/demo?business=no-such-business")
    notice = page.locator("#notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text('no business "no-such-business"')
    await expect(notice).to_contain_text("python -m commands.seed")
    status = page.locator("#status")
    await expect(status).to_have_text("not found")
    await page.wait_for_timeout(500)  # nothing connects later and turns it "live"
    await expect(status).to_have_text("not found")
    await expect(page.locator("#zone")).to_be_empty()
    await expect(page.locator("#service")).to_be_hidden()


# ---- paid services ------------------------------------------------------------------------


async def booking_of(gql: GraphQLClient, biz: Business, reference: str) -> dict[str, Any]:
    """The booking as its business sees it (the page shows only the reference)."""
    data = await gql.data(BOOKINGS, {"slug": biz.slug}, biz.owner.token)
    found: list[dict[str, Any]] = [e["node"] for e in data["organization"]["bookings"]["edges"]]
    [booking] = [b for b in found if b["reference"] == reference]
    return booking


def wall_clock(instant: str, zone: str) -> re.Pattern[str]:
    """`instant`'s time of day in `zone` as the page may write it: 14:05 or 02:05 PM."""
    local = datetime.fromisoformat(instant).astimezone(ZoneInfo(zone))
    return re.compile(f"{local:%H:%M}|{local:%I:%M} ?{local:%p}", re.IGNORECASE)


async def test_a_guest_pays_a_paid_service_in_test_mode_and_sees_it_confirmed(
    gql: GraphQLClient, boards: Boards
) -> None:
    biz = await create_business(gql, service={"priceAmount": PRICE})
    page = await boards.open(biz.slug)
    await expect(page.locator("#service")).to_contain_text("Appointment (30 min, €60.00)")
    await choose(page, page.locator("button.slot").first)
    await expect(page.locator("#book-price")).to_contain_text("€60.00")
    reference = await book_as_guest(page)

    status = page.locator("#booking-status")
    await expect(status).to_have_text("PENDING_PAYMENT")
    booking = await booking_of(gql, biz, reference)
    assert booking["status"] == "PENDING_PAYMENT"
    due = page.locator("#payment-due")
    await expect(due).to_contain_text("To pay: €60.00 by ")
    # The expiry in the business's zone (Berlin), not the browser's (UTC here).
    await expect(due).to_contain_text(wall_clock(booking["expiresAt"], "Europe/Berlin"))
    await expect(page.locator("#pay-stripe")).to_be_hidden()

    pay = page.get_by_role("button", name="Pay (test mode)")
    await pay.click()
    await expect(status).to_have_text("CONFIRMED", timeout=PUSH_WITHIN)
    await expect(pay).to_be_hidden()
    await expect(page.locator("#pay-error")).to_be_hidden()
    paid = await booking_of(gql, biz, reference)
    assert (paid["status"], paid["payment"]["status"]) == ("CONFIRMED", "SUCCEEDED")


async def test_a_payment_made_elsewhere_shows_on_the_open_page_live(
    gql: GraphQLClient, boards: Boards
) -> None:
    biz = await create_business(gql, service={"priceAmount": PRICE})
    page = await boards.open(biz.slug)
    await choose(page, page.locator("button.slot").nth(2))
    reference = await book_as_guest(page)
    status = page.locator("#booking-status")
    await expect(status).to_have_text("PENDING_PAYMENT")
    token = await page.locator("#manage-token").text_content()
    assert token

    # Paid from another device: only the bookingChanged push can tell this page.
    booking = await booking_of(gql, biz, reference)
    paid = await gql.data(CONFIRM_PAYMENT, {"id": booking["id"], "token": token})
    assert paid["confirmPayment"]["errors"] == []
    await expect(status).to_have_text("CONFIRMED", timeout=PUSH_WITHIN)
    await expect(page.get_by_role("button", name="Pay (test mode)")).to_be_hidden()


async def test_the_demo_clinic_lists_its_services_with_their_prices(
    database_url: str, boards: Boards
) -> None:
    await seed_demo(database_url)
    page = await boards.context.new_page()
    await page.goto(f"{boards.offline.base_url}/demo")
    options = page.locator("#service option")
    await expect(options.filter(has_text="First consultation")).to_have_text(
        "First consultation (30 min, free)"
    )
    await expect(options.filter(has_text="Sports massage")).to_have_text(
        "Sports massage (60 min, €65.00)"
    )


@dataclass
class StripeApp:
    stripe: StripeStandIn
    base_url: str
    gql: GraphQLClient


@pytest.fixture
async def stripe_app() -> AsyncIterator[StripeApp]:
    """An app process configured for Stripe (the loopback stand-in), on a database of its
    own: the session's server pays offline and would settle these payments wrongly."""
    async with (
        StripeStandIn.running() as stripe,
        own_database() as database_url,
        running_apps(
            database_url, count=1, redis_url=None, settings=stripe_configured(stripe)
        ) as apps,
        apps.clients() as [gql],
    ):
        yield StripeApp(stripe, apps.processes[0].base_url, gql)


async def test_with_stripe_the_page_offers_no_test_payment_and_hears_the_webhook(
    browser: Browser, stripe_app: StripeApp
) -> None:
    biz = await create_business(stripe_app.gql, service={"priceAmount": PRICE})
    async with boards_at(browser, stripe_app.base_url) as boards:
        page = await boards.open(biz.slug)
        await choose(page, page.locator("button.slot").first)
        reference = await book_as_guest(page)
        status = page.locator("#booking-status")
        await expect(status).to_have_text("PENDING_PAYMENT")
        await expect(page.locator("#pay-stripe")).to_contain_text("Stripe.js")
        await expect(page.get_by_role("button", name="Pay (test mode)")).to_be_hidden()

        # The card is paid at Stripe; its signed webhook confirms the booking.
        token = await page.locator("#manage-token").text_content()
        booking = await booking_of(stripe_app.gql, biz, reference)
        assert booking["payment"]["provider"] == "stripe"
        intent_id = intent_id_of(await read(stripe_app.gql, booking["id"], manage=token))
        stripe_app.stripe.succeed(intent_id)
        event = stripe_app.stripe.event_for("payment_intent.succeeded", intent_id)
        webhook = f"{stripe_app.base_url}/webhooks/stripe"
        assert (await stripe_app.stripe.deliver(webhook, event, WEBHOOK_SECRET)).status_code == 200
        await expect(status).to_have_text("CONFIRMED", timeout=PUSH_WITHIN)
        await expect(page.locator("#payment")).to_be_hidden()
