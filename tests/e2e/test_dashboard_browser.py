"""The live dashboard in real headless Chromium, on the real server and a real PostgreSQL.

Each test changes the database the way an executor does (plain SQL through `writer`) and
watches the page follow, without reloading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Route

from tests.conftest import RunningServer, make_settings, repo_root
from tests.e2e.conftest import WAIT_MS, Watched
from tests.support import Writer
from zapjobs_sse.server.run import serve_app

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


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


async def test_stat_card_changes_within_a_second_without_reload(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server.path(""))
    await watched.state("connected")
    assert (await page.text_content("#stat-pending") or "").strip() == "0"
    await page.evaluate("window.__notReloaded = true")
    # The first update also warms up the page's rendering path (a cold Chromium on a
    # busy machine); the next ones are timed.
    await writer.insert_run("email", status=0)
    await watched.text_becomes("#stat-pending", "1", timeout=5000)
    await writer.insert_run("email", status=0)
    started = time.monotonic()
    await watched.text_becomes("#stat-pending", "2", timeout=1000)
    assert time.monotonic() - started < 1.0
    await writer.insert_run("email", status=4)
    await writer.execute(
        "UPDATE zapjobs.runs SET completed_at = now() AT TIME ZONE 'utc' WHERE status = 4"
    )
    await watched.text_becomes("#stat-failed", "1", timeout=1000)
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
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, cron_expression)"
        " VALUES (%s, %s, '0 3 * * *')",
        (text, text),
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
    for path in ("", "runs", "jobs", "workers", "dead-letter"):
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
    for path in ("", "runs", f"runs/{run_id}", "jobs", "workers", "dead-letter"):
        watched.stream_requests.clear()
        await page.goto(server.path(path))
        await watched.state("connected")
        await asyncio.sleep(1.0)
        assert len(watched.stream_requests) == 1, (path, watched.stream_requests)
        assert watched.stream_requests[0].startswith(server.path("events"))
        open_streams = await page.evaluate(
            "performance.getEntriesByType('resource')"
            ".filter(e => e.name.split('?')[0].endsWith('/events')).length"
        )
        assert open_streams <= 1
    assert watched.errors == []
    assert watched.csp_violations == []


async def seed_showcase(writer: Writer) -> str:
    """Realistic data for the screenshots: a busy hour of a small scheduler."""
    jobs = ["send-invoices", "sync-crm", "nightly-report", "resize-images", "purge-sessions"]
    for job in jobs:
        await writer.execute(
            "INSERT INTO zapjobs.definitions (job_type_id, display_name, interval_minutes)"
            " VALUES (%s, %s, 5)",
            (job, job.replace("-", " ").title()),
        )
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, worker_id, created_at, started_at,"
        " completed_at, duration_ms, progress, total, error_message)"
        " SELECT gen_random_uuid(), (%s::text[])[1 + n %% 5],"
        "  CASE WHEN n %% 11 = 0 OR n %% 17 = 3 THEN 4 ELSE 3 END, 'worker-' || (1 + n %% 3),"
        "  now() AT TIME ZONE 'utc' - power(n, 1.3) * interval '3 seconds' - interval '9 s',"
        "  now() AT TIME ZONE 'utc' - power(n, 1.3) * interval '3 seconds' - interval '8 s',"
        "  now() AT TIME ZONE 'utc' - power(n, 1.3) * interval '3 seconds',"
        "  200 + (n * 7919) %% 9000, 100, 100,"
        "  CASE WHEN n %% 11 = 0 OR n %% 17 = 3 THEN 'SMTP 451: temporary failure' END"
        " FROM generate_series(1, 270) n",
        (jobs,),
    )
    run_id = str(uuid.uuid4())
    await writer.insert_run("resize-images", status=2, run_id=run_id)
    await writer.execute(
        "UPDATE zapjobs.runs SET worker_id = 'worker-2', progress = 640, total = 1000,"
        " progress_message = 'resizing originals', started_at = created_at WHERE id = %s",
        (run_id,),
    )
    for n in range(2):
        await writer.insert_run(jobs[n], status=0)
    for n in range(1, 4):
        await writer.execute(
            "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id,"
            " current_job_type, jobs_processed, jobs_failed, timestamp)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s,"
            "  now() AT TIME ZONE 'utc' - %s * interval '1 second')",
            (
                f"worker-{n}",
                f"app-{n}.internal",
                4000 + n,
                "resize-images" if n == 2 else None,
                90 + n * 7,
                n,
                90 if n == 3 else 2,
            ),
        )
    lines = []
    for n in range(1, 41):
        lines.append(f"resized batch {n}/100: {n * 16} images, {n * 3.7:.1f} MB written")
    await writer.insert_logs(run_id, ["starting: 1000 images in bucket media-originals"], level=2)
    await writer.insert_logs(run_id, ["cache warm-up took 412 ms"], level=1)
    await writer.insert_logs(run_id, lines)
    await writer.insert_logs(run_id, ["image 6613.png is larger than 40 MB, skipped"], level=3)
    await writer.insert_logs(run_id, ["resized batch 41/100: 656 images"], level=2)
    await writer.execute(
        "UPDATE zapjobs.logs SET category = CASE WHEN level = 1 THEN 'Cache'"
        " WHEN message LIKE 'starting%%' THEN 'Job' ELSE 'ImageResizer' END WHERE run_id = %s",
        (run_id,),
    )
    return run_id


async def test_screenshots_of_the_live_pages(
    server: RunningServer, writer: Writer, watched: Watched, tmp_path: Path
) -> None:
    """Writes docs/screenshot-*.png when ZAPJOBS_SCREENSHOTS=1 (to a temporary folder otherwise)."""
    page = watched.page
    run_id = await seed_showcase(writer)
    await asyncio.sleep(0.5)
    await page.goto(server.path(""))
    await watched.state("connected")
    await watched.text_becomes("#stat-running", "1")
    overview = tmp_path / "screenshot-overview.png"
    await page.screenshot(path=str(overview), full_page=True)

    await page.goto(server.path(f"runs/{run_id}"))
    await watched.state("connected")
    await writer.insert_logs(run_id, ["resized batch 42/100: 672 images"])
    await page.wait_for_selector("text=resized batch 42/100")
    await page.eval_on_selector("details.run-fields", "n => { n.open = false; }")
    run_log = tmp_path / "screenshot-run-log.png"
    await page.screenshot(path=str(run_log), full_page=True)
    assert overview.stat().st_size > 10000 and run_log.stat().st_size > 10000
    if os.environ.get("ZAPJOBS_SCREENSHOTS") == "1":
        docs = repo_root() / "docs"
        for shot in (overview, run_log):
            with contextlib.suppress(shutil.SameFileError):
                shutil.copyfile(shot, docs / shot.name)
