"""Real headless Chromium (Debian's), driven by Playwright, for the browser tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

WAIT_MS = 10000

CHROMIUM = os.environ.get("ZAPJOBS_CHROMIUM", "/usr/bin/chromium")
# Running as root needs --no-sandbox; the networking flags keep Chromium from dialling out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), (
        f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ZAPJOBS_CHROMIUM)"
    )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Watched:
    """A page plus what happened on it: dialogs, script errors, console errors, CSP
    violations, and the requests it made to the event stream."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        self.csp_violations: list[str] = []
        self.stream_requests: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def _request(self, request: Any) -> None:
        if request.url.split("?")[0].endswith("/events"):
            self.stream_requests.append(request.url)

    async def state(self, state: str, timeout: float = WAIT_MS) -> None:
        await self.page.wait_for_selector(
            f'#connection-status[data-state="{state}"]', timeout=timeout
        )

    async def text_becomes(self, selector: str, text: str, timeout: float = WAIT_MS) -> None:
        await self.page.wait_for_function(
            "([selector, text]) => {"
            " const node = document.querySelector(selector);"
            " return node !== null && node.textContent.trim() === text; }",
            arg=[selector, text],
            timeout=timeout,
        )


@contextlib.asynccontextmanager
async def opened(browser: Browser, **options: Any) -> AsyncIterator[Watched]:
    """A page of its own context: 1280 x 900 unless `options` (new_context's) say otherwise
    (viewport, java_script_enabled=False, ...)."""
    context = await browser.new_context(**({"viewport": {"width": 1280, "height": 900}} | options))
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        yield Watched(context, page)
    finally:
        await context.close()


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[Watched]:
    async with opened(browser) as page:
        yield page
