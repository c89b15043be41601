"""The queues tables (overview and Queues page) in real headless Chromium: they follow the
runs live, their ages tick between events, and the keyboard reaches a queue's runs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.e2e.conftest import Watched
from tests.support import Writer

pytestmark = pytest.mark.browser

MAIL = 'tr[data-queue="mail"]'


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"poll_interval": 1.0}


async def cell(watched: Watched, selector: str) -> str:
    return (await watched.page.text_content(selector) or "").strip()


@pytest.mark.parametrize("path", ["", "queues"])
async def test_the_queues_table_follows_the_runs_live(
    server: RunningServer, writer: Writer, watched: Watched, path: str
) -> None:
    page = watched.page
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, queue)"
        " VALUES ('mailer', 'Mailer', 'mail')"
    )
    await page.goto(server.path(path))
    await watched.state("connected")
    await page.evaluate("window.__notReloaded = true")
    assert await cell(watched, f"{MAIL} .pending") == "0"
    assert await cell(watched, f"{MAIL} .running") == "0"
    assert await cell(watched, f"{MAIL} time.age") == ""

    # A run waiting for 30 s: counted, and its wait keeps counting with no event.
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, queue, created_at)"
        " VALUES (gen_random_uuid(), 'mailer', 0, 'mail',"
        " now() AT TIME ZONE 'utc' - interval '30 seconds')"
    )
    await watched.text_becomes(f"{MAIL} .pending", "1", timeout=5000)
    first = await cell(watched, f"{MAIL} time.age")
    assert re.fullmatch(r"3\d s", first), first
    await page.wait_for_function(
        "([selector, text]) => document.querySelector(selector).textContent !== text",
        arg=[f"{MAIL} time.age", first],
        timeout=2500,
    )

    # A worker takes it: nothing pending, one running, no age.
    await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE queue = 'mail'")
    await watched.text_becomes(f"{MAIL} .running", "1", timeout=5000)
    assert await cell(watched, f"{MAIL} .pending") == "0"
    assert await cell(watched, f"{MAIL} time.age") == ""

    # A queue no definition names appears in its place by name.
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, queue)"
        " VALUES (gen_random_uuid(), 'import', 0, 'bulk')"
    )
    await page.wait_for_selector('tr[data-queue="bulk"]', timeout=5000)
    names = await page.eval_on_selector_all(
        "#queues-body tr", "rows => rows.map(row => row.dataset.queue)"
    )
    assert names == ["bulk", "mail"]
    link = await page.get_attribute('tr[data-queue="bulk"] a', "href")
    assert link == "/zapjobs/runs?queue=bulk&status=Pending"
    assert await page.evaluate("window.__notReloaded") is True
    await watched.state("connected")
    assert watched.errors == []


async def test_the_keyboard_opens_a_queues_pending_runs(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, queue)"
        " VALUES ('mailer', 'Mailer', 'mail'), ('report', 'Report', 'reports')"
    )
    await page.goto(server.path(""))
    await watched.state("connected")
    await page.keyboard.press("g")
    await page.keyboard.press("q")
    await page.wait_for_url(server.path("queues"))
    await watched.state("connected")
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("Enter")
    await page.wait_for_url(server.path("runs?queue=reports&status=Pending"))
    assert watched.errors == []
