"""GraphiQL works offline: Debian's Chromium loads /graphql from the real server while
every request to any other host is refused, and runs queries from the page."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    Page,
    Response,
    Route,
    async_playwright,
    expect,
)
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from config import ROOT
from graphiql import SCRIPTS, STYLESHEETS, graphiql_html
from tests.business import PASSWORD
from tests.conftest import IN_CI, Server

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM and not IN_CI:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    async with async_playwright() as playwright:
        # Debian's Chromium, never a browser download of playwright's own.
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Offline:
    """A fresh browser page that may reach the test server and nothing else."""

    page: Page
    base_url: str
    elsewhere: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

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


@pytest.fixture
async def offline(browser: Browser, server: Server) -> AsyncIterator[Offline]:
    context = await browser.new_context()
    page = await context.new_page()
    own = urlsplit(server.base_url).netloc  # 127.0.0.1:<port>
    offline = Offline(page, server.base_url)

    async def only_own_host(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == own:
            await route.continue_()
        else:
            offline.elsewhere.append(route.request.url)
            await route.abort()

    def failed_response(response: Response) -> None:
        if response.status >= 400:
            offline.failures.append(f"{response.status}: {response.url}")

    await page.route("**/*", only_own_host)
    page.on("pageerror", lambda error: offline.failures.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: offline.failures.append(f"failed: {request.url}"))
    page.on("response", failed_response)
    try:
        yield offline
    finally:
        await context.close()


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
