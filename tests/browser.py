"""Driving Debian's Chromium with playwright, offline: pages may reach the test server
and nothing else. Shared by the browser tests (each wraps these in its own fixtures)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Response,
    Route,
    WebSocketRoute,
    async_playwright,
)

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, never a browser download of playwright's own.
    Skipped when it is missing, unless under CI=true."""
    if not HAVE_CHROMIUM and not IN_CI:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Offline:
    """Keeps the pages of a browser context on the test server: every request (and
    WebSocket) to another host is refused and noted in `elsewhere`; failed requests,
    responses >= 400 and uncaught page errors are noted in `failures`."""

    base_url: str
    elsewhere: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def own(self) -> str:
        return urlsplit(self.base_url).netloc  # 127.0.0.1:<port>

    def is_own(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob") or parts.netloc == self.own

    async def guard(self, context: BrowserContext) -> None:
        """Route every request of `context` (pages opened before and after)."""

        async def only_own_host(route: Route) -> None:
            if self.is_own(route.request.url):
                await route.continue_()
            else:
                self.elsewhere.append(route.request.url)
                await route.abort()

        async def refuse_socket(ws: WebSocketRoute) -> None:
            self.elsewhere.append(ws.url)
            await ws.close()

        await context.route("**/*", only_own_host)
        # Only sockets to other hosts are routed: our own go straight to the server.
        await context.route_web_socket(lambda url: not self.is_own(url), refuse_socket)
        context.on("page", self.watch)
        for page in context.pages:
            self.watch(page)

    def watch(self, page: Page) -> None:
        def failed_response(response: Response) -> None:
            if response.status >= 400:
                self.failures.append(f"{response.status}: {response.url}")

        page.on("pageerror", lambda error: self.failures.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: self.failures.append(f"failed: {request.url}"))
        page.on("response", failed_response)

    def explain(self) -> str:
        return f"refused requests to other hosts {self.elsewhere}, failures {self.failures}"


@asynccontextmanager
async def offline_context(
    browser: Browser, base_url: str, *, bypass_csp: bool = False
) -> AsyncIterator[tuple[BrowserContext, Offline]]:
    """A fresh browser context whose pages may reach `base_url`'s host and no other."""
    context = await browser.new_context(bypass_csp=bypass_csp)
    offline = Offline(base_url)
    try:
        await offline.guard(context)
        yield context, offline
    finally:
        await context.close()
