"""The live slot board (/demo) in Debian's Chromium, offline: two pages watch the same
week of a business; a slot booked in one, or over the API by someone else, vanishes
from every open board within seconds; the booking dialog names the day that was clicked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.booking_api import create
from tests.browser import Offline, chromium, offline_context
from tests.business import create_business, sign_up
from tests.conftest import GraphQLClient, Server

SLOTS_A_WEEK = 5 * 16  # Mon-Fri 09:00-17:00, 30-minute slots, one staff member
PUSH_WITHIN = 5_000  # ms


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


@pytest.fixture
async def boards(browser: Browser, server: Server) -> AsyncIterator[Boards]:
    # The page's Content-Security-Policy stays in force: the test reads the page with
    # locators, never by evaluating strings in it.
    async with offline_context(browser, server.base_url) as (context, offline):
        yield Boards(context, offline)
        assert offline.elsewhere == [], "the board tried to reach another host"
        assert offline.failures == []


async def version(page: Page) -> int:
    return int(await page.locator("#board").get_attribute("data-version") or "0")


def slot(page: Page, start: str) -> Locator:
    return page.locator(f'button.slot[data-start="{start}"]')


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

    await chosen.click()
    dialog = a.locator("#book")
    await expect(dialog).to_be_visible()
    await a.locator("#guest-name").fill("Grace Guest")
    await a.locator("#guest-email").fill("grace@example.com")
    await a.locator("#book-submit").click()
    booked = a.locator("#booked")
    await expect(booked).to_be_visible(timeout=PUSH_WITHIN)
    reference = await booked.get_attribute("data-reference")
    assert reference
    await expect(booked).to_contain_text(reference)
    await expect(dialog).to_be_hidden()

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
