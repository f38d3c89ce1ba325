"""GraphiQL works offline: Debian's Chromium loads /graphql from the real server while
every request to any other host is refused, and runs queries from the page, the
examples included: a paid booking is paid in test mode with nothing typed."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from infra.settings import ROOT
from tests.browser import chromium, offline_context
from tests.business import PASSWORD
from tests.conftest import GraphQLClient, Server
from tests.demo_seed import first_service, paid_service, seed_demo
from web.graphiql import SCRIPTS, STYLESHEETS, graphiql_html


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@dataclass
class Offline:
    """A fresh browser page that may reach the test server and nothing else."""

    page: Page
    base_url: str
    elsewhere: list[str]
    failures: list[str]

    async def open(self, query: str) -> None:
        """GraphiQL with `query` in the editor (its ?q= parameter), then run it."""
        response = await self.page.goto(f"{self.base_url}/graphql?q={quote(query)}")
        assert response is not None
        assert response.status == 200
        try:
            await self.page.locator(".graphiql-execute-button").click(timeout=15_000)
            return
        except PlaywrightTimeoutError:
            pass
        pytest.fail(
            "GraphiQL did not start: "
            f"refused requests to other hosts {self.elsewhere}, failures {self.failures}"
        )


async def run_example(page: Page, name: str) -> None:
    """Runs the example `name`, picked in the execute button's menu. The button is a menu
    only once GraphiQL has read the document's operations: before, it runs the document
    as it is (and fails), so the test waits for the menu."""
    await page.locator('.graphiql-execute-button[aria-haspopup="menu"]').click()
    await page.get_by_role("menuitem", name=name).click()


@pytest.fixture
async def offline(browser: Browser, server: Server) -> AsyncIterator[Offline]:
    async with offline_context(browser, server.base_url) as (context, guard):
        page = await context.new_page()
        yield Offline(page, server.base_url, guard.elsewhere, guard.failures)


async def test_graphiql_runs_a_query_with_no_internet(offline: Offline) -> None:
    loaded: list[str] = []
    offline.page.on("requestfinished", lambda request: loaded.append(urlsplit(request.url).path))

    await offline.open("{ __typename }")

    await expect(offline.page.locator(".graphiql-response")).to_contain_text(
        '"__typename": "Query"'
    )
    assert set(SCRIPTS + STYLESHEETS) <= set(loaded)
    assert offline.elsewhere == [], "GraphiQL tried to reach another host"
    assert offline.failures == []


async def test_a_first_visit_opens_on_the_examples_ready_to_run(
    offline: Offline, database_url: str, gql: GraphQLClient
) -> None:
    await seed_demo(database_url)
    service = await first_service(gql)
    page = offline.page
    response = await page.goto(f"{offline.base_url}/graphql")
    assert response is not None
    await expect(page.locator(".graphiql-query-editor")).to_contain_text("query Availability")
    # Filled in by the page: the demo clinic's first service.
    await expect(page.locator(".graphiql-editor-tool")).to_contain_text(service["id"])

    await run_example(page, "Availability")
    await expect(page.locator(".graphiql-response")).to_contain_text('"Europe/Berlin"')
    assert offline.elsewhere == []
    assert offline.failures == []


async def test_the_paying_examples_book_the_paid_service_and_pay_it_in_test_mode(
    offline: Offline, database_url: str, gql: GraphQLClient
) -> None:
    await seed_demo(database_url)
    paid = await paid_service(gql)
    page = offline.page
    await page.goto(f"{offline.base_url}/graphql")
    await expect(page.locator(".graphiql-editor-tool")).to_contain_text(paid["id"])
    response = page.locator(".graphiql-response")

    await run_example(page, "BookPaid")
    await expect(response).to_contain_text('"status": "PENDING_PAYMENT"')
    await expect(response).to_contain_text(f'"amount": {paid["price"]["amount"]}')
    await expect(response).to_contain_text('"provider": "offline"')
    reference = re.search(r'"reference": "(\w+)"', await response.inner_text())
    assert reference
    await expect(page.locator("#auth-note")).to_contain_text(f"Last booking {reference[1]}")

    # No $bookingId or $manageToken typed: the page fills in the booking just made.
    await run_example(page, "PayInTestMode")
    await expect(response).to_contain_text('"status": "CONFIRMED"')
    await expect(response).to_contain_text(f'"reference": "{reference[1]}"')
    await expect(response).to_contain_text('"errors": []')
    assert offline.elsewhere == []
    assert offline.failures == []


async def test_graphiql_uses_the_token_of_a_sign_up(offline: Offline, unique: str) -> None:
    email = f"graphiql-{unique}@example.com"
    await offline.open(
        f'mutation {{ signUp(input: {{email: "{email}", password: "{PASSWORD}", name: "G"}}) '
        "{ accessToken errors { code } } }"
    )
    await expect(offline.page.locator(".graphiql-response")).to_contain_text('"accessToken"')
    token = await offline.page.evaluate(
        "() => localStorage.getItem('booking-api:graphiql:access-token')"
    )
    assert isinstance(token, str)
    assert token
    note = offline.page.locator("#auth-note")
    await expect(note).to_contain_text(f"Signed in as token \u2026{token[-4:]}")

    # Nothing typed in the headers pane: later requests carry the remembered token.
    await offline.open("{ viewer { email } }")
    await expect(offline.page.locator(".graphiql-response")).to_contain_text(email)

    await note.get_by_role("button", name="clear").click()
    await expect(note).to_contain_text("Anonymous")
    await offline.page.locator(".graphiql-execute-button").click()
    await expect(offline.page.locator(".graphiql-response")).to_contain_text('"viewer": null')
    assert offline.elsewhere == []
    assert offline.failures == []


async def test_vendored_files_are_served_as_the_manifest_lists_them(server: Server) -> None:
    html = graphiql_html()
    assert not re.search(r"https?://|//fonts\.", html), "the page names another host"
    manifest: dict[str, str] = {}
    for line in (ROOT / "static/vendor/MANIFEST.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            _, _, file, sha256, _ = line.split("\t")
            manifest[f"/static/vendor/{file}"] = sha256
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.text == html
        for url in SCRIPTS + STYLESHEETS:
            assert f'"{url}"' in html
            response = await http.get(url)
            assert response.status_code == 200, url
            assert hashlib.sha256(response.content).hexdigest() == manifest[url], url
            assert "immutable" in response.headers["cache-control"]
