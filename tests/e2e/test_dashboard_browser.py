"""The live dashboard in real headless Chromium, on the real server and a real PostgreSQL.

Each test changes the database the way an executor does (plain SQL through `writer`) and
watches the page follow, without reloading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Route

from tests.conftest import RunningServer, make_settings, repo_root
from tests.e2e.conftest import WAIT_MS, Watched, opened
from tests.support import Writer, sse_connect
from zapjobs_sse.demo import demo_jobs
from zapjobs_sse.server.run import serve_app

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"
PAGES = ("", "runs", "jobs", "queues", "workers", "dead-letter")


def sized(
    browser: Browser, width: int, height: int = 844
) -> contextlib.AbstractAsyncContextManager[Watched]:
    """A page at a given viewport (390 x 844: a phone)."""
    return opened(browser, viewport={"width": width, "height": height})


async def page_width(page: Page) -> int:
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    return width


async def run_update(writer: Writer, run_id: str, assignments: str, *params: Any) -> None:
    await writer.execute(f"UPDATE zapjobs.runs SET {assignments} WHERE id = %s", (*params, run_id))


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"poll_interval": 1.0}


async def db_log_ids(writer: Writer, run_id: str) -> list[str]:
    rows = await writer.execute(
        "SELECT id::text FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id", (run_id,)
    )
    return [row[0] for row in rows]


async def page_log_ids(page: Page) -> list[str]:
    ids: list[str] = await page.eval_on_selector_all(
        "#logs-container [data-log-id]", "nodes => nodes.map(n => n.dataset.logId)"
    )
    return ids


async def test_stat_cards_change_live_without_reload(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server.path(""))
    await watched.state("connected")
    assert (await page.text_content("#stat-pending") or "").strip() == "0"
    await page.evaluate("window.__notReloaded = true")
    # How fast a change reaches a viewer is the benchmarks' to measure (bench/, scenario
    # 7); here, that the cards follow every change with no reload and no polling.
    await writer.insert_run("email", status=0)
    await watched.text_becomes("#stat-pending", "1", timeout=5000)
    await writer.insert_run("email", status=0)
    await watched.text_becomes("#stat-pending", "2", timeout=5000)
    await writer.insert_run("email", status=4)
    await writer.execute(
        "UPDATE zapjobs.runs SET completed_at = now() AT TIME ZONE 'utc' WHERE status = 4"
    )
    await watched.text_becomes("#stat-failed", "1", timeout=5000)
    await watched.state("connected")  # live all along, not the polling fallback
    assert await page.evaluate("window.__notReloaded") is True
    assert watched.errors == []


async def test_run_row_updates_in_place_and_a_new_run_appears(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await writer.insert_run("email", status=2)
    await page.goto(server.path("runs"))
    await watched.state("connected")
    row = await page.query_selector(f'tr[data-run-id="{run_id}"]')
    assert row is not None
    assert (await row.eval_on_selector(".status", "n => n.textContent")).strip() == "Running"

    await writer.execute(
        "UPDATE zapjobs.runs SET status = 3, duration_ms = 4200, progress = 10, total = 10,"
        " completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
        (run_id,),
    )
    selector = f'tr[data-run-id="{run_id}"]'
    await watched.text_becomes(f"{selector} .status", "Completed")
    await watched.text_becomes(f"{selector} .duration", "4.2 s")
    assert await row.evaluate("n => n.isConnected"), "the row was replaced, not updated"

    new_run = await writer.insert_run("report", status=0)
    await page.wait_for_selector(f'tr[data-run-id="{new_run}"]')
    first = await page.eval_on_selector("#runs-body tr", "n => n.dataset.runId")
    assert first == new_run
    await watched.text_becomes(f'tr[data-run-id="{new_run}"] .status', "Pending")
    assert watched.errors == []


async def test_what_changes_before_the_stream_starts_is_shown_without_a_reload(
    server: RunningServer, writer: Writer, watched: Watched, http: aiohttp.ClientSession
) -> None:
    # The page is rendered, then the run finishes and writes lines, and only then does
    # the page's stream start (held here): the stream replays what it missed.
    page = watched.page
    run_id = await writer.insert_run("email", status=2)
    await writer.insert_logs(run_id, ["before the render"])
    gate = asyncio.Event()
    streams: list[str] = []

    async def hold(route: Route) -> None:
        streams.append(route.request.url)
        await gate.wait()
        await route.continue_()

    await page.route(re.compile(r"/events\?"), hold)
    async with sse_connect(http, server.path("events?topics=runs")) as watcher:
        await page.goto(server.path(f"runs/{run_id}"))
        await page.wait_for_function("document.readyState === 'complete'")
        assert await page.text_content(".run-summary [data-field=status]") == "Running"
        await writer.insert_logs(run_id, ["after the render"])
        await writer.execute(
            "UPDATE zapjobs.runs SET status = 3, duration_ms = 4200,"
            " completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
            (run_id,),
        )
        await watcher.wait_for(
            lambda events: any(e.json()["status"] == "Completed" for e in events),
            what="the server to publish the change",
        )
    gate.set()
    await watched.state("connected")
    await watched.text_becomes(".run-summary [data-field=status]", "Completed")
    messages = page.locator("#logs-container .log-message")
    await page.wait_for_function(
        "() => document.querySelectorAll('#logs-container .log-message').length === 2"
    )
    assert await messages.all_text_contents() == ["before the render", "after the render"]
    assert len(streams) == 1 and "last_event_id=" in streams[0]
    assert watched.errors == []


async def test_a_running_run_shows_its_time_so_far_then_its_duration(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await writer.insert_run("email", status=2)
    await writer.execute(
        "UPDATE zapjobs.runs SET started_at = now() AT TIME ZONE 'utc' - interval '90 seconds'"
        " WHERE id = %s",
        (run_id,),
    )
    await page.goto(server.path(f"runs/{run_id}"))
    await watched.state("connected")
    first = await page.inner_text("#run-elapsed")
    assert first.startswith("running for 1 min 3"), first
    await page.wait_for_function(
        "t => document.getElementById('run-elapsed').innerText !== t", arg=first, timeout=3000
    )
    await writer.execute(
        "UPDATE zapjobs.runs SET status = 3, duration_ms = 95000,"
        " completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
        (run_id,),
    )
    await watched.text_becomes(".run-summary .duration", "1 min 35 s")
    assert await page.is_hidden("#run-elapsed")
    assert watched.errors == []


async def test_run_log_equals_the_database_while_the_run_writes(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await writer.insert_run("import", status=2)
    stop = asyncio.Event()

    async def write_lines() -> None:
        batch = 0
        while not stop.is_set():
            await writer.insert_logs(run_id, [f"batch {batch} line {n}" for n in range(7)])
            batch += 1
            await asyncio.sleep(0.005)

    writing = asyncio.create_task(write_lines())
    try:
        await asyncio.sleep(0.3)  # lines before the page opens
        await page.goto(server.path(f"runs/{run_id}"))
        await watched.state("connected")
        await asyncio.sleep(1.5)  # and lines while it streams
    finally:
        stop.set()
        await writing
    expected = await db_log_ids(writer, run_id)
    assert len(expected) > 100
    await page.wait_for_function(
        "n => document.querySelectorAll('#logs-container [data-log-id]').length >= n",
        arg=len(expected),
        timeout=WAIT_MS,
    )
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive now
    assert await page_log_ids(page) == expected
    count = (await page.text_content("#log-count") or "").strip()
    assert count == str(len(expected))
    assert watched.errors == []


async def test_log_level_filter_follow_and_line_links(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await writer.insert_run("import", status=2)
    await writer.insert_logs(run_id, [f"info {n}" for n in range(200)])
    await writer.insert_logs(run_id, ["something failed"], level=4)
    await page.goto(server.path(f"runs/{run_id}"))
    await watched.state("connected")
    follow = page.locator("#log-follow")
    assert await follow.is_checked()
    # Scrolling up pauses follow; new lines then do not move the view.
    await page.eval_on_selector("#logs-container", "n => { n.scrollTop = 0; }")
    await page.wait_for_function("() => !document.getElementById('log-follow').checked")
    await writer.insert_logs(run_id, ["later line"])
    await page.wait_for_selector("#logs-container [data-log-id]:last-child >> text=later line")
    assert await page.eval_on_selector("#logs-container", "n => n.scrollTop") == 0
    # The level filter hides lower levels.
    await page.select_option("#log-level", "Error")
    visible = await page.eval_on_selector_all(
        "#logs-container [data-log-id]:not([hidden]) .log-message",
        "ns => ns.map(n => n.textContent)",
    )
    assert visible == ["something failed"]
    # Each line has a link to itself.
    line_id = (await page_log_ids(page))[5]
    href = await page.get_attribute(f'[data-log-id="{line_id}"] a.log-time', "href")
    assert href == f"#log-{line_id}"


@pytest.mark.parametrize("server_settings", [{"poll_interval": 1.0, "worker_stale_after": 1.5}])
async def test_worker_rows_appear_live_and_turn_stale(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server.path("workers"))
    await watched.state("connected")
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
        " VALUES (gen_random_uuid(), 'worker-9', 'app-9', 99, now() AT TIME ZONE 'utc')"
    )
    row = 'tr[data-worker-id="worker-9"]'
    await watched.text_becomes(f"{row} .state", "active", timeout=3000)
    await watched.text_becomes(f"{row} .state", "stale", timeout=5000)
    assert await page.get_attribute(row, "class") == "worker-stale"
    await writer.execute(
        "UPDATE zapjobs.heartbeats SET timestamp = now() AT TIME ZONE 'utc',"
        " jobs_processed = 5 WHERE worker_id = 'worker-9'"
    )
    await watched.text_becomes(f"{row} .state", "active", timeout=3000)
    await watched.text_becomes(f"{row} .jobs-processed", "5")


async def test_theme_choice_applies_at_once_and_persists(
    server: RunningServer, watched: Watched
) -> None:
    page = watched.page
    await page.emulate_media(color_scheme="dark")
    await page.goto(server.path("workers"))
    assert await page.get_attribute("html", "data-theme") == "auto"
    dark_background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    await page.select_option("#theme-select", "light")
    assert await page.get_attribute("html", "data-theme") == "light"
    light_background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert light_background != dark_background
    await page.goto(server.path("jobs"))
    assert await page.get_attribute("html", "data-theme") == "light"
    assert await page.input_value("#theme-select") == "light"


async def test_indicator_follows_a_server_restart_and_the_page_catches_up(
    database_dsn: str, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    settings = make_settings(database_dsn, poll_interval=1.0)
    async with serve_app(settings) as url:
        port = int(url.split(":")[2].split("/")[0])
        await page.goto(url)
        await watched.state("connected")
    await page.wait_for_function(
        "() => document.getElementById('connection-status').dataset.state !== 'connected'"
    )
    await writer.insert_run("email", status=0)  # while nobody is listening
    restarted = make_settings(database_dsn, poll_interval=1.0, port=port)
    async with serve_app(restarted):
        await watched.state("connected", timeout=20000)
        await watched.text_becomes("#stat-pending", "1")
        await writer.insert_run("email", status=0)
        await watched.text_becomes("#stat-pending", "2")


async def test_polling_fallback_when_the_stream_is_refused(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    blocked = True

    async def refuse(route: Route) -> None:
        if blocked:
            await route.fulfill(status=503, body='{"error": "unavailable"}')
        else:
            await route.continue_()

    await page.route("**/events?*", refuse)
    await page.route("**/events", refuse)
    await page.goto(server.path(""))
    await watched.state("polling")
    words = (await page.text_content("#connection-status") or "").strip()
    assert "refreshing every 1 s" in words
    await writer.insert_run("email", status=0)
    await watched.text_becomes("#stat-pending", "1", timeout=5000)
    run_id = await writer.insert_run("report", status=2)
    await page.wait_for_selector(f'tr[data-run-id="{run_id}"]', timeout=5000)
    # The stream works again: back to it.
    blocked = False
    await watched.state("connected", timeout=5000)
    await writer.insert_run("email", status=0)
    await watched.text_becomes("#stat-pending", "2", timeout=2000)


async def seed_everything(writer: Writer, text: str = "nightly-report") -> str:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, cron_expression, queue)"
        " VALUES (%s, %s, '0 3 * * *', %s)",
        (text, text, text),
    )
    run_id = await writer.insert_run(text, status=4)
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = %s, stack_trace = %s, worker_id = 'worker-1',"
        " duration_ms = 1500, completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
        (text, text, run_id),
    )
    await writer.insert_logs(run_id, ["starting", text, "finished"])
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
        " VALUES (gen_random_uuid(), 'worker-1', %s, 4242, now() AT TIME ZONE 'utc')",
        (text,),
    )
    await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, error_message,"
        " attempt_count) VALUES (gen_random_uuid(), %s, %s, %s, 3)",
        (run_id, text, text),
    )
    return run_id


async def test_every_page_shows_its_data_without_javascript(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    run_id = await seed_everything(writer)
    await asyncio.sleep(0.5)  # the coalesced stats catch up with the writes
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(server.path(""))
        assert (await page.text_content("#stat-failed") or "").strip() == "1"
        assert await page.locator(f'tr[data-run-id="{run_id}"]').count() == 1
        assert await page.locator('tr[data-worker-id="worker-1"]').count() == 1
        assert await page.locator("#runs-chart rect.bar-failed[height='120']").count() == 1
        await page.goto(server.path("runs?status=Failed"))
        assert await page.locator(f'tr[data-run-id="{run_id}"] .duration').inner_text() == "1.5 s"
        await page.goto(server.path(f"runs/{run_id}"))
        messages = await page.eval_on_selector_all(
            "#logs-container .log-message", "ns => ns.map(n => n.textContent)"
        )
        assert messages == ["starting", "nightly-report", "finished"]
        assert "nightly-report" in (await page.text_content(".stack-trace") or "")
        await page.goto(server.path("jobs"))
        assert "0 3 * * *" in (await page.text_content("#jobs-body") or "")
        await page.goto(server.path("queues"))
        assert await page.locator('tr[data-queue="nightly-report"] .pending').inner_text() == "0"
        await page.goto(server.path("workers"))
        assert await page.locator('tr[data-worker-id="worker-1"] .state').inner_text() == "active"
        await page.goto(server.path("dead-letter"))
        assert "nightly-report" in (await page.text_content("#dead-letter-body") or "")
        # The go-to-run box is a plain form.
        await page.goto(server.path(""))
        await page.fill("#go-to-run-id", run_id)
        await page.press("#go-to-run-id", "Enter")
        await page.wait_for_url(f"**/runs/{run_id}")
    finally:
        await context.close()


async def test_hostile_text_is_shown_as_text_and_runs_nothing(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await seed_everything(writer, XSS)
    for path in ("", "runs", "jobs", "queues", "workers", "dead-letter"):
        await page.goto(server.path(path))
        assert await page.locator("main img").count() == 0
    await page.goto(server.path(""))
    await watched.state("connected")
    # Live inserts go through the client's renderers.
    live_run = await writer.insert_run(XSS, status=4)
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = %s WHERE id = %s", (XSS, live_run)
    )
    await watched.text_becomes(f'tr[data-run-id="{live_run}"] .error', XSS)
    await watched.text_becomes(f'tr[data-run-id="{live_run}"] .job-type', XSS)

    await page.goto(server.path(f"runs/{run_id}"))
    await watched.state("connected")
    await writer.insert_logs(run_id, [XSS, "after"])
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = %s, progress_message = %s WHERE id = %s",
        (XSS + " live", XSS, run_id),
    )
    await page.wait_for_function(
        "() => document.querySelectorAll('#logs-container [data-log-id]').length === 5"
    )
    await watched.text_becomes('.error-message[data-field="errorMessage"]', XSS + " live")
    messages = await page.eval_on_selector_all(
        "#logs-container .log-message", "ns => ns.map(n => n.textContent)"
    )
    assert messages == ["starting", XSS, "finished", XSS, "after"]
    assert (await page.text_content(".job-type[data-field='jobTypeId']") or "") == XSS
    assert await page.locator("main img").count() == 0
    await asyncio.sleep(0.2)
    assert watched.dialogs == []
    assert watched.errors == []
    assert watched.csp_violations == []


@pytest.mark.parametrize("server_settings", [{"poll_interval": 1.0, "base_path": "/ops/jobs"}])
async def test_each_page_opens_exactly_one_event_source_under_the_base_path(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await seed_everything(writer)
    for path in (
        "",
        "runs",
        f"runs/{run_id}",
        "jobs",
        "queues",
        "workers",
        "dead-letter",
        "activity",
    ):
        watched.stream_requests.clear()
        await page.goto(server.path(path))
        await watched.state("connected")
        await asyncio.sleep(1.0)
        assert len(watched.stream_requests) == 1, (path, watched.stream_requests)
        assert watched.stream_requests[0].startswith(server.path("events"))
    assert watched.errors == []
    assert watched.csp_violations == []


# -- on a phone ------------------------------------------------------------------------


@pytest.mark.parametrize("width", [360, 390])
async def test_every_page_fits_a_phone_and_the_log_stays_readable(
    server: RunningServer, writer: Writer, browser: Browser, width: int
) -> None:
    run_id = await seed_everything(writer, "nightly-report-for-every-region")
    long_line = "exported " + ", ".join(f"region-{n}" for n in range(40))
    await writer.insert_logs(run_id, [long_line], level=3)
    missing = uuid.uuid4()
    async with sized(browser, width) as phone:
        for path in (*PAGES, f"runs/{run_id}", f"runs/{missing}"):
            await phone.page.goto(server.path(path))
            await phone.page.wait_for_load_state("load")
            assert await page_width(phone.page) <= width, (path, width)
        await phone.page.goto(server.path(f"runs/{run_id}"))
        await phone.state("connected")
        cells = await phone.page.eval_on_selector_all(
            "#logs-container .log-message", "ns => ns.map(n => n.getBoundingClientRect().width)"
        )
        assert cells and min(cells) >= 200, cells
        assert phone.errors == []


# -- live lists keep their filter -------------------------------------------------------


async def test_a_filtered_list_drops_runs_that_leave_it_and_adds_runs_that_enter_it(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    leaving = await writer.insert_run("resize-images", status=2)
    staying = await writer.insert_run("resize-images", status=2)
    await page.goto(server.path("runs?job_type=resize-images&status=Running"))
    await watched.state("connected")
    assert await page.locator("#runs-body tr").count() == 2
    await run_update(writer, leaving, "status = 3, duration_ms = 900")
    await page.wait_for_selector(f'tr[data-run-id="{leaving}"]', state="detached")
    entering = await writer.insert_run("resize-images", status=0)
    other_type = await writer.insert_run("send-welcome-email", status=2)
    await run_update(writer, entering, "status = 2")
    await page.wait_for_selector(f'tr[data-run-id="{entering}"]')
    await asyncio.sleep(0.5)
    ids = await page.eval_on_selector_all("#runs-body tr", "ns => ns.map(n => n.dataset.runId)")
    assert ids == [entering, staying]  # newest first
    assert other_type not in ids
    statuses = await page.eval_on_selector_all(
        "#runs-body .status", "ns => ns.map(n => n.textContent)"
    )
    assert statuses == ["Running", "Running"]
    assert watched.errors == []


# -- run rows say what they mean ---------------------------------------------------------


async def test_run_rows_show_the_attempt_and_no_misleading_progress_or_error(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    done = await writer.insert_run("sync-inventory", status=3)
    retry = await writer.insert_run("sync-inventory", status=2)
    await run_update(
        writer, retry, "attempt_number = 2, error_message = %s", "warehouse API answered 503"
    )
    await page.goto(server.path("runs"))
    await watched.state("connected")
    finished = f'tr[data-run-id="{done}"]'
    assert await page.is_hidden(f"{finished} progress")
    assert (await page.inner_text(f"{finished} .progress-cell")).strip() == ""
    retrying = f'tr[data-run-id="{retry}"]'
    assert (await page.inner_text(f"{retrying} .attempt")).strip() == "2"
    assert (await page.inner_text(f"{retrying} .error")).strip() == ""
    # Live: the retry fails again and is scheduled once more; its row says so.
    await run_update(
        writer, retry, "status = 6, attempt_number = 3, error_message = %s", "still 503"
    )
    await watched.text_becomes(f"{retrying} .error", "still 503")
    await watched.text_becomes(f"{retrying} .attempt", "3")
    # A new run that has not reported progress: no "0%".
    fresh = await writer.insert_run("sync-inventory", status=3)
    await page.wait_for_selector(f'tr[data-run-id="{fresh}"]')
    assert await page.is_hidden(f'tr[data-run-id="{fresh}"] progress')
    texts = await page.eval_on_selector_all(
        "#runs-body .progress-text", "ns => ns.map(n => n.textContent)"
    )
    assert "0%" not in texts
    assert watched.errors == []


# -- the run page ------------------------------------------------------------------------


async def test_run_page_shows_the_log_first_names_the_trigger_and_the_trace_once(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    trace = 'Traceback (most recent call last):\n  File "feed.py", line 1\nValueError: bad'
    run_id = await writer.insert_run("import-legacy-feed", status=4)
    await run_update(
        writer,
        run_id,
        "trigger_type = 1, error_message = 'bad', stack_trace = %s, attempt_number = 3,"
        " started_at = created_at, completed_at = created_at",
        trace,
    )
    await writer.insert_logs(run_id, [f"line {n}" for n in range(30)])
    await writer.execute(
        "INSERT INTO zapjobs.logs (id, run_id, level, message, exception)"
        " VALUES (gen_random_uuid(), %s, 4, 'Attempt 3 failed: bad', %s)",
        (run_id, trace),
    )
    for width, height in ((1366, 768), (390, 844)):
        async with sized(browser, width, height) as shown:
            page = shown.page
            await page.goto(server.path(f"runs/{run_id}"))
            await shown.state("connected")
            assert await page.get_attribute("details.run-fields", "open") is None
            top = await page.eval_on_selector(
                "#logs-container", "n => n.getBoundingClientRect().top"
            )
            assert top < height - 150, (width, top)  # the log starts above the fold
            assert await page.inner_text('.run-summary [data-field="triggerType"]') == "Scheduled"
            assert await page.inner_text("#run-error-heading") == "Attempt 3 failed"
            visible_traces = await page.evaluate(
                "t => [...document.querySelectorAll('pre, dd')]"
                ".filter(n => n.checkVisibility() && n.textContent.includes(t)).length",
                "ValueError: bad",
            )
            assert visible_traces == 0  # collapsed in the error panel and in the log line
            assert await page.locator('.fields [data-field="stackTrace"]').count() == 0
            await page.click("#run-error summary")
            assert await page.is_visible("#run-error .stack-trace")
            await page.click("details.run-fields summary")
            height_of = "n => n.getBoundingClientRect().height"
            line = await page.eval_on_selector(".fields dt", height_of)
            for field in ("createdAt", "startedAt", "completedAt"):
                cell = f'.fields [data-field="{field}"]'
                assert await page.eval_on_selector(cell, height_of) <= line + 1, (width, field)
                assert len(await page.inner_text(cell)) == len("2026-12-01 23:59:59")
            assert shown.errors == []


async def test_log_toolbar_counts_shown_lines_keeps_the_level_and_counts_new_lines(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await writer.insert_run("generate-report", status=2)
    await writer.insert_logs(run_id, [f"step {n}" for n in range(120)])
    await writer.insert_logs(run_id, ["3 orders reference deleted customers"], level=3)
    await writer.insert_logs(run_id, ["currency rate missing"], level=4)
    await page.goto(server.path(f"runs/{run_id}"))
    await watched.state("connected")
    assert (await page.inner_text("#log-count")).strip() == "122"
    await page.select_option("#log-level", "Warning")
    assert (await page.inner_text("#log-count")).strip() == "2"
    assert (await page.inner_text("#log-total")).strip() == "of 122"
    assert "level=Warning" in page.url
    await page.reload()
    await watched.state("connected")
    assert await page.input_value("#log-level") == "Warning"
    assert (await page.inner_text("#log-count")).strip() == "2"
    shown = await page.eval_on_selector_all(
        "#logs-container [data-log-id]:not([hidden])", "ns => ns.length"
    )
    assert shown == 2
    # Follow paused: new lines are counted, and one click jumps to them.
    await page.select_option("#log-level", "Trace")
    assert "level=" not in page.url
    await page.eval_on_selector("#logs-container", "n => { n.scrollTop = 0; }")
    await page.wait_for_function("() => !document.getElementById('log-follow').checked")
    assert await page.is_hidden("#log-new")
    await writer.insert_logs(run_id, ["later 1", "later 2", "later 3"])
    await watched.text_becomes("#log-new", "3 new lines ↓")
    await page.click("#log-new")
    assert await page.is_checked("#log-follow")
    assert await page.is_hidden("#log-new")
    at_end = "n => n.scrollHeight - n.scrollTop - n.clientHeight < 24"
    await page.wait_for_function(f"() => ({at_end})(document.getElementById('logs-container'))")
    assert (await page.inner_text("#log-count")).strip() == "125"
    assert watched.errors == []


# -- workers -----------------------------------------------------------------------------


async def test_workers_show_every_run_they_are_running_and_say_what_they_count(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, current_job_type,"
        " jobs_processed, jobs_failed, timestamp) VALUES (gen_random_uuid(), 'worker-1', 'app-1',"
        " 7, 'long-finished-job', 12, 3, now() AT TIME ZONE 'utc')"
    )
    runs = []
    for job_type in ("resize-images", "resize-images", "send-welcome-email"):
        run_id = await writer.insert_run(job_type, status=2)
        await run_update(writer, run_id, "worker_id = 'worker-1'")
        runs.append(run_id)
    await page.goto(server.path("workers"))
    await watched.state("connected")
    cell = 'tr[data-worker-id="worker-1"] .current-job'
    assert await page.inner_text(cell) == "3 runs: resize-images \u00d72, send-welcome-email"
    await run_update(writer, runs[0], "status = 3")
    await watched.text_becomes(cell, "2 runs: resize-images, send-welcome-email")
    later = await writer.insert_run("sync-inventory", status=0)
    await run_update(writer, later, "status = 2, worker_id = 'worker-1'")
    await watched.text_becomes(cell, "3 runs: resize-images, send-welcome-email, sync-inventory")
    # All done: the heartbeat's job type, older than the runs' ends, is not shown either.
    await writer.execute(
        "UPDATE zapjobs.runs SET status = 3 WHERE worker_id = 'worker-1' AND status = 2"
    )
    await watched.text_becomes(cell, "")
    headers = await page.eval_on_selector_all(
        ".workers-table th", "ns => ns.map(n => n.textContent.trim())"
    )
    assert headers[3:6] == ["Running now", "Attempts", "Failed attempts"]
    assert "counts runs that ended Failed" in await page.inner_text(".hint")
    assert watched.errors == []


# -- small things ------------------------------------------------------------------------


async def test_error_pages_have_no_live_indicator_and_no_page_load_asks_for_a_missing_file(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    run_id = await seed_everything(writer)
    for path in (*PAGES, f"runs/{run_id}"):
        await page.goto(server.path(path))
        await watched.state("connected")
    icon = await page.get_attribute("link[rel=icon]", "href")
    assert icon is not None
    assert (await page.request.get(server.path(icon.removeprefix("/zapjobs/")))).status == 200
    assert failed == []
    response = await page.goto(server.path(f"runs/{uuid.uuid4()}"))
    assert response is not None and response.status == 404
    await asyncio.sleep(0.5)
    assert await page.locator("#connection-status").count() == 0
    assert watched.errors == []


async def test_ids_and_job_types_stay_on_one_line_beside_a_long_error(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    plain = await writer.insert_run("send-welcome-email", status=3)
    failing = await writer.insert_run("rebuild-search-index", status=4)
    long_error = "the search cluster did not answer within 4 seconds; " * 6
    await run_update(
        writer, failing, "error_message = %s, worker_id = %s", long_error, "worker-eu-west-1-7f3c9a"
    )
    await run_update(writer, plain, "worker_id = 'worker-eu-west-1-7f3c9a'")
    async with sized(browser, 1366, 900) as desk:
        await desk.page.goto(server.path("runs"))
        height = "n => n.getBoundingClientRect().height"
        plain_height = await desk.page.eval_on_selector(f'tr[data-run-id="{plain}"]', height)
        failing_row = f'tr[data-run-id="{failing}"]'
        assert await desk.page.eval_on_selector(failing_row, height) <= plain_height + 1
        assert await desk.page.get_attribute(f"{failing_row} .error", "title") == long_error


async def test_data_is_dimmed_while_offline(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server.path(""))
    await watched.state("connected")
    opacity = "() => Number(getComputedStyle(document.querySelector('main')).opacity)"
    assert await page.evaluate(opacity) == 1
    await page.route("**/events*", lambda route: route.abort())
    await page.route("**/api/**", lambda route: route.abort())
    await page.evaluate("window.zapjobsLive.source.close(); window.zapjobsLive.startPolling()")
    await watched.state("disconnected")
    await page.wait_for_function(f"() => ({opacity})() < 0.7", timeout=5000)
    await page.unroute("**/events*")
    await page.unroute("**/api/**")
    await watched.state("connected")
    await page.wait_for_function(f"() => ({opacity})() === 1", timeout=5000)


async def test_filter_links_carry_only_the_filters_that_are_set(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await writer.insert_run("send-welcome-email", status=4)
    await page.goto(server.path("runs"))
    await page.select_option(".filters select[name=status]", "Failed")
    await page.click(".filters button[type=submit]")
    await page.wait_for_url("**/runs?status=Failed")
    assert "job_type" not in page.url
    await page.goto(server.path("dead-letter"))
    assert "waiting for an operator" in await page.inner_text("main .hint")


async def test_times_read_relative_with_the_exact_time_on_hover_and_keep_ticking(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    run_id = await writer.insert_run("send-welcome-email", status=3)
    await run_update(writer, run_id, "created_at = created_at - interval '56 seconds'")
    created = await writer.execute(
        "SELECT to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') FROM zapjobs.runs WHERE id = %s",
        (run_id,),
    )
    await page.goto(server.path("runs"))
    await watched.state("connected")
    cell = f'tr[data-run-id="{run_id}"] .created time'
    text = (await page.inner_text(cell)).strip()
    assert re.fullmatch(r"5\d s ago", text), text
    assert await page.get_attribute(cell, "title") == f"{created[0][0]} UTC"
    await watched.text_becomes(cell, "1 min ago", timeout=8000)
    live = await writer.insert_run("sync-inventory", status=0)
    await watched.text_becomes(f'tr[data-run-id="{live}"] .created time', "just now")


# -- keyboard ----------------------------------------------------------------------------


async def test_keyboard_shortcuts_move_between_pages_and_rows_but_not_while_typing(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    first = await writer.insert_run("sync-inventory", status=3)
    second = await writer.insert_run("resize-images", status=3)
    await page.goto(server.path(""))
    await watched.state("connected")
    await page.keyboard.press("?")
    assert await page.is_visible("#shortcuts")
    await page.keyboard.press("Escape")
    assert await page.is_hidden("#shortcuts")
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "go-to-run-id"
    await page.keyboard.type("gr")  # typing in the box: no shortcut
    assert await page.input_value("#go-to-run-id") == "gr"
    assert page.url == server.path("")
    await page.evaluate("document.activeElement.blur()")
    for keys, path in (
        ("gw", "workers"),
        ("gd", "dead-letter"),
        ("gj", "jobs"),
        ("gq", "queues"),
        ("go", ""),
    ):
        await page.keyboard.press(keys[0])
        await page.keyboard.press(keys[1])
        await page.wait_for_url(server.path(path))
    await page.keyboard.press("g")
    await page.keyboard.press("r")
    await page.wait_for_url(server.path("runs"))
    await watched.state("connected")
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("k")
    selected = await page.eval_on_selector_all("tr.selected", "ns => ns.map(n => n.dataset.runId)")
    assert selected == [second]  # newest first
    await page.keyboard.press("j")
    await page.keyboard.press("Enter")
    await page.wait_for_url(server.path(f"runs/{first}"))
    assert watched.errors == []


# -- the README's screenshots -------------------------------------------------------------

# What the demo's jobs write when they fail (zapjobs_sse/demo.py).
DEMO_ERRORS = {
    "sync-inventory": ("UpstreamUnavailable", "warehouse API answered 503 Service Unavailable"),
    "import-legacy-feed": (
        "ValueError",
        "line 1: malformed record: expected '<feed>', found '<html>'",
    ),
    "rebuild-search-index": ("TimeoutError", "timed out after 4 s"),
}
SHOWCASE_WORKER = "app-1-4242-9f3c1a"


async def seed_showcase(writer: Writer) -> str:
    """A busy hour of the demo (zapjobs_sse/demo.py): its job types, runs in its mix, one
    worker running several jobs at once, and a report run writing its log."""
    for job in demo_jobs:
        d = job.definition
        await writer.execute(
            "INSERT INTO zapjobs.definitions (job_type_id, display_name, description, queue,"
            " max_retries, timeout_seconds, max_concurrency, last_run_at, last_run_status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, now() AT TIME ZONE 'utc' - interval '20 s', 3)",
            (
                d.job_type_id,
                d.display_name,
                d.description,
                d.queue,
                d.max_retries,
                d.timeout_seconds,
                d.max_concurrency,
            ),
        )
    mix = ["send-welcome-email"] * 5 + ["resize-images"] * 4 + ["sync-inventory"] * 3
    mix += ["generate-report", "rebuild-search-index", "import-legacy-feed"]
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, worker_id, trigger_type, triggered_by,"
        " created_at, started_at, completed_at, duration_ms, progress, total, attempt_number)"
        " SELECT gen_random_uuid(), (%s::text[])[1 + (n * 7) %% %s], 3, %s, 3, 'demo',"
        "  now() AT TIME ZONE 'utc' - power(n, 1.3) * interval '3 seconds' - interval '9 s',"
        "  now() AT TIME ZONE 'utc' - power(n, 1.3) * interval '3 seconds' - interval '8 s',"
        "  now() AT TIME ZONE 'utc' - power(n, 1.3) * interval '3 seconds',"
        "  200 + (n * 7919) %% 4000, 0, 0, 1"
        " FROM generate_series(1, 270) n",
        (mix, len(mix), SHOWCASE_WORKER),
    )
    # resize-images reports progress image by image; the others do not.
    await writer.execute(
        "UPDATE zapjobs.runs SET progress = 6, total = 6 WHERE job_type_id = 'resize-images'"
    )
    for job_type, (error_type, message) in DEMO_ERRORS.items():
        await writer.execute(
            "UPDATE zapjobs.runs SET status = 4, error_type = %s, error_message = %s,"
            " attempt_number = 2 WHERE id IN (SELECT id FROM zapjobs.runs"
            " WHERE job_type_id = %s ORDER BY created_at DESC OFFSET 1 LIMIT 3)",
            (error_type, message, job_type),
        )
    # After its retries, import-legacy-feed ends in the dead letter queue.
    await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, queue, error_message,"
        " error_type, attempt_count, moved_at) SELECT gen_random_uuid(), id, job_type_id, queue,"
        " error_message, error_type, attempt_number, completed_at FROM zapjobs.runs"
        " WHERE job_type_id = 'import-legacy-feed' AND status = 4"
    )
    retry = await writer.insert_run("sync-inventory", status=6)
    await run_update(
        writer,
        retry,
        "attempt_number = 2, worker_id = %s, error_type = 'UpstreamUnavailable',"
        " error_message = %s, created_at = created_at - interval '4 s'",
        SHOWCASE_WORKER,
        DEMO_ERRORS["sync-inventory"][1],
    )
    for job_type, progress, total in (("resize-images", 4, 7), ("send-welcome-email", 0, 0)):
        run_id = await writer.insert_run(job_type, status=2)
        await run_update(
            writer,
            run_id,
            "worker_id = %s, progress = %s, total = %s, started_at = created_at",
            SHOWCASE_WORKER,
            progress,
            total,
        )
    for job_type in ("send-welcome-email", "resize-images"):
        await writer.insert_run(job_type, status=0)
    report = str(uuid.uuid4())
    await writer.insert_run("generate-report", status=2, run_id=report)
    await run_update(
        writer,
        report,
        "worker_id = %s, progress = 3, total = 5, progress_message = 'aggregate',"
        " trigger_type = 3, triggered_by = 'demo', input_json = %s,"
        " started_at = created_at - interval '5 s'",
        SHOWCASE_WORKER,
        '{"report": "daily-sales"}',
    )
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, current_job_type,"
        " jobs_processed, jobs_failed, queues, timestamp) VALUES (gen_random_uuid(), %s, 'app-1',"
        " 4242, 'generate-report', 268, 11, %s, now() AT TIME ZONE 'utc' - interval '2 s')",
        (SHOWCASE_WORKER, demo_jobs.queues),
    )
    steps = ["query orders", "join customers", "aggregate"]
    await writer.insert_logs(report, ["Report daily-sales"], level=2)
    for number, step in enumerate(steps, start=1):
        await writer.insert_logs(report, [f"step {number}: {step} (start)"], level=0)
        await writer.insert_logs(report, [f"step {number}: {step} took a while"], level=1)
        if step == "join customers":
            await writer.insert_logs(report, ["3 orders reference deleted customers"], level=3)
    await writer.insert_logs(report, ["Currency rate missing for 2024-02-29; used previous day"], 4)
    await writer.execute(
        "UPDATE zapjobs.logs SET category = 'report' WHERE run_id = %s AND level <> 4", (report,)
    )
    return report


SHOTS = {
    # name: (width, height, full page)
    "": (1366, 900, True),
    "-phone": (390, 844, False),
}


async def test_screenshots_of_the_live_pages(
    server: RunningServer, writer: Writer, browser: Browser, tmp_path: Path
) -> None:
    """Writes docs/screenshot-*.png when ZAPJOBS_SCREENSHOTS=1 (to a temporary folder
    otherwise), after checking that each picture shows what the README says it shows."""
    run_id = await seed_showcase(writer)
    failed_today = await writer.execute(
        "SELECT count(*) FROM zapjobs.runs WHERE status = 4"
        " AND completed_at >= date_trunc('day', now() AT TIME ZONE 'utc')"
    )
    await asyncio.sleep(0.5)
    shots = []
    for suffix, (width, height, full_page) in SHOTS.items():
        async with sized(browser, width, height) as shown:
            page = shown.page
            await page.goto(server.path(""))
            await shown.state("connected")
            await shown.text_becomes("#stat-running", "3")
            await shown.text_becomes("#stat-failed", str(failed_today[0][0]))
            await shown.text_becomes("#stat-dead-letter", "3")
            worker = f'tr[data-worker-id="{SHOWCASE_WORKER}"] .current-job'
            await shown.text_becomes(
                worker, "3 runs: generate-report, resize-images, send-welcome-email"
            )
            texts = await page.eval_on_selector_all(
                "#runs-body .progress-text", "ns => ns.map(n => n.textContent)"
            )
            assert "4/7" in texts and "0%" not in texts
            assert await page.locator("#runs-body .attempt.retried").count() >= 1
            assert await page.locator("#runs-chart > g").count() in (60, 61)  # an hour of minutes
            assert await page_width(page) <= width
            overview = tmp_path / f"screenshot-overview{suffix}.png"
            await page.screenshot(path=str(overview), full_page=full_page)

            await page.goto(server.path(f"runs/{run_id}"))
            await shown.state("connected")
            await writer.insert_logs(run_id, ["step 4: render charts (start)"], level=0)
            await page.wait_for_selector("text=step 4: render charts (start)")
            await page.wait_for_timeout(300)  # the last line scrolled into view
            assert await page.inner_text('.run-summary [data-field="triggerType"]') == "Api"
            assert await page.is_hidden("#run-error")
            log_top = await page.eval_on_selector(
                "#logs-container", "n => n.getBoundingClientRect().top"
            )
            assert log_top < height - 200
            last_line = await page.eval_on_selector(
                "#logs-container [data-log-id]:last-child",
                "n => { const r = n.getBoundingClientRect();"
                " const c = n.parentElement.getBoundingClientRect();"
                " return r.bottom <= c.bottom + 1 && r.top >= c.top; }",
            )
            assert last_line, "Follow keeps the newest line in view"
            assert await page_width(page) <= width
            run_log = tmp_path / f"screenshot-run-log{suffix}.png"
            await page.screenshot(path=str(run_log), full_page=full_page)
            assert shown.errors == []
            shots += [overview, run_log]
    assert all(shot.stat().st_size > 10000 for shot in shots)
    if os.environ.get("ZAPJOBS_SCREENSHOTS") == "1":
        docs = repo_root() / "docs"
        for shot in shots:
            with contextlib.suppress(shutil.SameFileError):
                shutil.copyfile(shot, docs / shot.name)
