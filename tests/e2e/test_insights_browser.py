"""The job-type page and the overview's range in Chromium: complete without JavaScript,
the range kept in the URL, and live as runs finish."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.conftest import RunningServer
from tests.e2e.conftest import Watched, opened
from tests.support import Writer

REPORT = "send-report"


@pytest.fixture
def server_settings() -> dict[str, Any]:
    # Runs written with old completion times reach the rollups at the next write.
    return {"poll_interval": 1.0, "rollup_interval": 0.2}


async def seed(writer: Writer) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, description, queue,"
        " cron_expression) VALUES (%s, 'Send report', 'Mails the <b>daily</b> report',"
        " 'reports', '0 7 * * *')",
        (REPORT,),
    )
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at, started_at,"
        " completed_at, duration_ms, error_type, error_message)"
        " SELECT gen_random_uuid(), %s, s, t, t, t + interval '1 second', 1000 + n,"
        "  CASE WHEN s = 4 THEN 'TimeoutException' END,"
        "  CASE WHEN s = 4 THEN 'timed out <script>alert(1)</script>' END"
        " FROM generate_series(1, 40) n,"
        " LATERAL (SELECT CASE WHEN n %% 4 = 0 THEN 4 ELSE 3 END AS s,"
        "  now() AT TIME ZONE 'utc' - n * interval '3 hours' - interval '30 minutes' AS t) x",
        (REPORT,),
    )


async def finish_run(writer: Writer, status: int, error_type: str | None = None) -> str:
    run_id = str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, started_at) VALUES"
        " (%s, %s, 2, now() AT TIME ZONE 'utc')",
        (run_id, REPORT),
    )
    await writer.execute(
        "UPDATE zapjobs.runs SET status = %s, completed_at = now() AT TIME ZONE 'utc',"
        " duration_ms = 2500, error_type = %s, error_message = %s WHERE id = %s",
        (status, error_type, error_type and "it broke", run_id),
    )
    return run_id


async def test_a_job_type_page_is_complete_without_javascript(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    await seed(writer)
    async with opened(browser, java_script_enabled=False) as shown:
        page = shown.page
        await page.goto(server.path("jobs"))
        await page.click(f"a[href$='/jobs/{REPORT}']")
        assert page.url.endswith(f"/jobs/{REPORT}")
        assert await page.inner_text("h1") == f"Send report {REPORT}"
        assert "Mails the <b>daily</b> report" in await page.inner_text(".definition")
        # 24 hours by default: runs 3.5, 6.5, ... 21.5 hours ago (none at the edge); every
        # 4th failed.
        assert await page.inner_text("#insights [data-figure='completed']") == "6"
        assert await page.inner_text("#insights [data-figure='failed']") == "1"
        assert await page.inner_text("#insights [data-figure='failureRate']") == "14.3 %"
        assert await page.locator("#outcomes-chart rect.bar-failed").count() == 1
        assert await page.locator("#durations-chart rect.bar-p50").count() == 7
        errors = page.locator(".errors-table tbody tr")
        assert await errors.count() == 1
        assert "timed out <script>alert(1)</script>" in await errors.inner_text()
        # The charts' text alternative: every bucket as a table row.
        await page.click("#outcomes-chart-summary ~ details summary")
        rows = page.locator("#outcomes-chart-summary ~ details tbody tr")
        assert await rows.count() in (24, 25)
        assert await page.locator("#runs-body tr").count() == 15
        assert not shown.errors


async def test_the_chosen_range_is_kept_in_the_url(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    await seed(writer)
    await asyncio.sleep(0.5)  # the rollups' next write
    page = watched.page
    await page.goto(server.path(f"jobs/{REPORT}"))
    await watched.state("connected")
    await page.click(".insights-head .ranges a:text-is('7d')")
    await page.wait_for_url("**/jobs/send-report?range=7d")
    assert await page.get_attribute(".ranges a:text-is('7d')", "aria-current") == "page"
    assert await page.inner_text("#outcomes-heading") == "Runs finished, last 7 days"
    assert await page.inner_text("#insights [data-figure='completed']") == "30"
    assert "estimated from hourly rollups" in await page.inner_text("#insights")
    # By keyboard, on the overview.
    await page.goto(server.path(""))
    await page.focus(".chart-panel .ranges a:text-is('24h')")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/?range=24h")
    assert await page.inner_text("#chart-heading") == "Runs finished per hour, last 24 hours"
    assert await page.locator("#runs-chart > g").count() in (24, 25)
    assert not watched.errors and not watched.console_errors


async def test_a_job_type_page_follows_its_runs_as_they_finish(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    await seed(writer)
    page = watched.page
    await page.goto(server.path(f"jobs/{REPORT}?range=1h"))
    await watched.state("connected")
    assert await page.inner_text("#insights [data-figure='completed']") == "0"
    completed = await finish_run(writer, 3)
    await page.wait_for_selector(f'#runs-body tr[data-run-id="{completed}"]')
    await watched.text_becomes("#insights [data-figure='completed']", "1")
    await watched.text_becomes("#insights [data-figure='p50']", "2.5 s")
    failed = await finish_run(writer, 4, "HttpRequestException")
    await watched.text_becomes("#insights [data-figure='failed']", "1")
    await watched.text_becomes("#insights [data-figure='failureRate']", "50.0 %")
    await page.wait_for_selector(f".errors-table a[href$='/runs/{failed}']")
    # Runs of other job types do not show up here.
    other = str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status) VALUES (%s, 'other', 0)", (other,)
    )
    await page.wait_for_timeout(500)
    assert await page.locator(f'#runs-body tr[data-run-id="{other}"]').count() == 0
    assert not watched.errors and not watched.console_errors


async def test_a_job_type_page_fits_a_phone(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    await seed(writer)
    for theme in ("light", "dark"):
        async with opened(
            browser, viewport={"width": 360, "height": 780}, color_scheme=theme
        ) as shown:
            await shown.page.goto(server.path(f"jobs/{REPORT}?range=30d"))
            await shown.state("connected")
            width = await shown.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360
