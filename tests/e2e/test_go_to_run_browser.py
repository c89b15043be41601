"""The header's "go to run" box in real headless Chromium: the short ids of the tables work
in it, and no page of the dashboard logs a console error."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page

from tests.conftest import RunningServer
from tests.e2e.conftest import Watched
from tests.support import Writer

pytestmark = pytest.mark.browser


async def box_accepts(page: Page, text: str) -> bool:
    accepted: bool = await page.eval_on_selector(
        "#go-to-run-id", "(box, text) => { box.value = text; return box.checkValidity(); }", text
    )
    return accepted


async def test_no_page_logs_a_console_error(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    run_id = await writer.insert_run("email", status=2)
    page = watched.page
    for relative in (
        "",
        "runs",
        f"runs/{run_id}",
        "jobs",
        "workers",
        "dead-letter",
    ):
        await page.goto(server.path(relative))
        # The box checks what is typed before sending it (its pattern is compiled then).
        assert await box_accepts(page, run_id[:8]), relative
        assert await box_accepts(page, f" {run_id} "), relative
        assert not await box_accepts(page, "run 42"), relative
        assert not await box_accepts(page, run_id[:7]), relative
        assert watched.console_errors == [], (relative, watched.console_errors)
    assert watched.errors == []


async def test_a_short_id_typed_from_a_table_goes_to_the_run(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    run_id = await writer.insert_run("email", status=3)
    page = watched.page
    await page.goto(server.path("runs"))
    short = (await page.text_content(f'tr[data-run-id="{run_id}"] .run-id') or "").strip()
    assert len(short) == 8 and run_id.startswith(short)
    await page.fill("#go-to-run-id", f" {short} ")
    await page.press("#go-to-run-id", "Enter")
    await page.wait_for_url(server.path(f"runs/{run_id}"))
    assert run_id in (await page.text_content("h1") or "")
    assert watched.console_errors == []


async def test_an_ambiguous_or_unknown_prefix_says_so_with_the_box_to_try_again(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    first, second = "abcdef12-0000-4000-8000-000000000001", "abcdef12-0000-4000-8000-000000000002"
    for run_id in (first, second):
        await writer.insert_run("email", run_id=run_id)
    page = watched.page
    await page.goto(server.path("jobs"))
    await page.fill("#go-to-run-id", "abcdef12")
    await page.press("#go-to-run-id", "Enter")
    await page.wait_for_selector(".error-page-matches")
    assert "More than one run" in (await page.text_content(".error-page-message") or "")
    links = await page.eval_on_selector_all(
        ".error-page-matches a", "links => links.map(a => a.textContent)"
    )
    assert links == [first, second]
    assert await page.input_value("#go-to-run-id") == "abcdef12"
    # Type more of it in the same box.
    await page.fill("#go-to-run-id", "abcdef12-0000-4000-8000-00000000000")
    await page.press("#go-to-run-id", "Enter")
    assert "More than one run" in (await page.text_content(".error-page-message") or "")
    await page.fill("#go-to-run-id", "abcdef12-0000-4000-8000-000000000002")
    await page.press("#go-to-run-id", "Enter")
    await page.wait_for_url(server.path(f"runs/{second}"))
    unknown = uuid.uuid4().hex[:10]
    await page.fill("#go-to-run-id", unknown)
    await page.press("#go-to-run-id", "Enter")
    await page.wait_for_selector(".error-page-message")
    assert (await page.text_content("h1") or "").strip() == "404 Not found"
    assert "No run id starts with" in (await page.text_content(".error-page-message") or "")
    assert await page.input_value("#go-to-run-id") == unknown
    assert (
        await page.get_attribute("link[rel=stylesheet]", "href") == "/zapjobs/static/dashboard.css"
    )
    # Chromium reports the document's own 404, and nothing else.
    assert watched.console_errors == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"
    ]
