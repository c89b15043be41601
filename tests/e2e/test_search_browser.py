"""The runs page's search box and queue filter in real headless Chromium."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import RunningServer
from tests.e2e.conftest import Watched, opened
from tests.support import Writer

pytestmark = pytest.mark.browser

FAILED = 4


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"search_window": 5000}


async def add_run(
    writer: Writer,
    job_type: str,
    status: int,
    error: str | None = None,
    input_json: str | None = None,
    queue: str = "default",
) -> str:
    run_id = await writer.insert_run(job_type, status=status)
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = %s, input_json = %s, queue = %s WHERE id = %s",
        (error, input_json, queue, run_id),
    )
    return run_id


async def shown_ids(page: Page) -> list[str]:
    ids: list[str] = await page.eval_on_selector_all(
        "#runs-body tr", "rows => rows.map(row => row.dataset.runId)"
    )
    return ids


async def test_typing_a_search_shows_the_matching_runs_and_what_was_searched(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    timeout = await add_run(writer, "sync-inventory", FAILED, "Warehouse API timed out")
    order = await add_run(writer, "send-invoice", 3, input_json='{"order": "A-1042"}')
    await add_run(writer, "sync-inventory", FAILED, "disk full")
    page = watched.page
    await page.goto(server.path("runs"))
    await watched.state("connected")
    assert await page.query_selector("#search-note") is None
    await page.keyboard.press("/")  # on the runs page, "/" is the search box
    assert await page.evaluate("document.activeElement.id") == "search"
    await page.keyboard.type("TIMED OUT")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/runs?q=TIMED+OUT")
    await watched.state("connected")
    assert await shown_ids(page) == [timeout]
    assert await page.input_value("#search") == "TIMED OUT"
    note = await page.inner_text("#search-note")
    assert "Searched the 5\u202f000 most recent runs; older runs are not searched." in note
    # The search and a filter together, from the same form.
    await page.fill("#search", "a-1042")
    await page.select_option(".filters select[name=status]", "Completed")
    await page.press("#search", "Enter")
    await page.wait_for_url("**/runs?q=a-1042&status=Completed")
    assert await shown_ids(page) == [order]
    await page.fill("#search", "no such text")
    await page.press("#search", "Enter")
    await page.wait_for_selector("#runs-empty:not([hidden])")
    empty = await page.inner_text("#runs-empty")
    assert "No runs match the search \u201cno such text\u201d" in empty
    assert watched.errors == [] and watched.console_errors == []


async def test_while_searching_shown_rows_stay_live_and_no_new_row_is_added(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    found = await add_run(writer, "resize-images", 2, input_json='{"album": "holiday"}')
    page = watched.page
    await page.goto(server.path("runs?q=holiday"))
    await watched.state("connected")
    assert await shown_ids(page) == [found]
    await add_run(writer, "resize-images", 2, input_json='{"album": "holiday-2"}')
    await writer.execute(
        "UPDATE zapjobs.runs SET status = 3, duration_ms = 1500 WHERE id = %s", (found,)
    )
    await watched.text_becomes(f'tr[data-run-id="{found}"] .status', "Completed")
    await asyncio.sleep(0.5)
    assert await shown_ids(page) == [found]  # the new match waits for the next search
    assert await page.is_visible("#search-note .js-only")
    assert watched.errors == []


async def test_a_queue_filtered_list_adds_the_live_runs_of_that_queue_only(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    first = await add_run(writer, "send-invoice", 0, queue="emails")
    page = watched.page
    await page.goto(server.path("runs?queue=emails&status=Pending"))
    await watched.state("connected")
    assert await page.input_value(".filters input[name=queue]") == "emails"
    assert await shown_ids(page) == [first]
    await add_run(writer, "send-invoice", 0, queue="default")
    entering = await add_run(writer, "send-invoice", 0, queue="emails")
    await page.wait_for_selector(f'tr[data-run-id="{entering}"]')
    await asyncio.sleep(0.5)
    assert await shown_ids(page) == [entering, first]
    assert watched.errors == []


async def test_the_search_works_without_javascript(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    hit = await add_run(writer, "sync-inventory", FAILED, "Connection refused")
    await add_run(writer, "sync-inventory", FAILED, "other")
    async with opened(browser, java_script_enabled=False) as plain:
        page = plain.page
        await page.goto(server.path("runs?status=Failed"))
        await page.fill("#search", "refused")
        await page.press("#search", "Enter")
        await page.wait_for_url("**/runs?q=refused&status=Failed&job_type=&queue=")
        assert await shown_ids(page) == [hit]
        assert "older runs are not searched" in await page.inner_text("#search-note")


@pytest.mark.parametrize("width", [360, 390, 1366])
async def test_the_search_box_fits_a_phone_in_both_themes(
    server: RunningServer, writer: Writer, browser: Browser, width: int
) -> None:
    """With ZAPJOBS_SCREENSHOTS_DIR set, writes the runs page's screenshots there."""
    for n in range(3):
        await add_run(
            writer,
            "nightly-report-for-every-region",
            FAILED,
            f"Report region-{n} failed: upstream warehouse API timed out after 30 s",
        )
    folder = os.environ.get("ZAPJOBS_SCREENSHOTS_DIR")
    async with opened(browser, viewport={"width": width, "height": 800}) as shown:
        page = shown.page
        for name, path in (("list", "runs"), ("found", "runs?q=timed+out&queue=default")):
            await page.goto(server.path(path))
            await shown.state("connected")
            assert await page.evaluate("document.documentElement.scrollWidth") <= width, name
            box = await page.eval_on_selector("#search", "b => b.getBoundingClientRect().toJSON()")
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
            assert box["width"] >= 150, (name, box)
            assert len(await shown_ids(page)) == 3
            for theme in ("light", "dark"):
                await page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
                if folder:
                    shot = Path(folder) / f"search-{name}-{width}-{theme}.png"
                    await page.screenshot(path=str(shot))
        assert shown.errors == []
