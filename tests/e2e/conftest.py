"""Real headless Chromium (Debian's), driven by Playwright, for the browser tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

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
