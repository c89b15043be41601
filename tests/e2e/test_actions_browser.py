"""The operators' actions from the pages, in real headless Chromium: with JavaScript (a
fetch to the JSON API, the result arriving on the live stream) and without it (the
forms, 303 back with a notice); who sees the buttons; a forged post is refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from tests.conftest import RunningServer
from tests.e2e.conftest import Watched, opened
from tests.e2e.test_auth_browser import sign_in
from tests.integration.test_executor import eventually, working
from tests.integration.test_roles import OPERATOR_TOKEN, ROLE_SETTINGS, VIEWER_TOKEN
from tests.support import Writer
from zapjobs_sse.db import Database
from zapjobs_sse.executor import JobContext, JobRegistry

pytestmark = pytest.mark.browser

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = 0, 2, 3, 4, 5
DL_PENDING, DL_DISCARDED = 0, 2
ACTION_FORMS = "form.action-form"


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"poll_interval": 1.0}


@pytest.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = await Database.open(database_dsn, size=2)
    yield db
    await db.close()


async def define(writer: Writer, job_type: str) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES (%s, %s)",
        (job_type, job_type),
    )


async def runs_of(writer: Writer, job_type: str) -> list[tuple[Any, ...]]:
    return await writer.execute(
        "SELECT id::text, status, trigger_type, input_json FROM zapjobs.runs"
        " WHERE job_type_id = %s ORDER BY created_at",
        (job_type,),
    )


async def status_of(writer: Writer, run_id: str) -> int:
    ((status,),) = await writer.execute("SELECT status FROM zapjobs.runs WHERE id = %s", (run_id,))
    return int(status)


async def dead_letter(writer: Writer, job_type: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        run_id = await writer.insert_run(job_type, status=FAILED)
        rows = await writer.execute(
            "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, error_message,"
            " attempt_count) VALUES (gen_random_uuid(), %s, %s, %s, 3) RETURNING id::text",
            (run_id, job_type, f"{job_type} failed ({n})"),
        )
        ids.append(rows[0][0])
    return ids


async def dead_letter_statuses(writer: Writer) -> dict[str, list[int]]:
    rows = await writer.execute(
        "SELECT job_type_id, status FROM zapjobs.dead_letter ORDER BY job_type_id, status"
    )
    statuses: dict[str, list[int]] = {}
    for job_type, status in rows:
        statuses.setdefault(job_type, []).append(int(status))
    return statuses


async def visible_actions(page: Page) -> list[str]:
    labels: list[str] = await page.eval_on_selector_all(
        f"{ACTION_FORMS}:not([hidden]) button[type=submit]",
        "nodes => nodes.map(n => n.textContent.trim())",
    )
    return labels


async def confirm(page: Page, question_has: str) -> None:
    """The dialog a destructive or bulk action asks first: it names what, then OK."""
    await page.wait_for_selector("#confirm-action[open]")
    assert question_has in (await page.text_content("#confirm-action-message") or "")
    await page.click("#confirm-action-ok")


# -- with JavaScript ------------------------------------------------------------------


async def test_retry_a_failed_run_from_its_page_and_watch_the_new_run_complete(
    server: RunningServer, writer: Writer, watched: Watched, database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()
    release = asyncio.Event()

    @registry.job("flaky")
    async def flaky(ctx: JobContext, data: Any) -> Any:
        await release.wait()
        return "ok"

    await registry.register(database)
    failed = await writer.insert_run("flaky", status=FAILED)
    page = watched.page
    await page.goto(server.path(f"runs/{failed}"))
    await watched.state("connected")
    await page.evaluate("window.__notReloaded = true")
    assert await visible_actions(page) == ["Retry as a new run"]
    # A double click: one request, one new run.
    await page.dblclick("#run-actions form[action$='/retry'] button")
    link = page.locator("#run-actions .action-done a")
    await link.wait_for()
    new_run = (await link.get_attribute("title")) or ""
    runs = await runs_of(writer, "flaky")
    assert [row[0] for row in runs] == [failed, new_run] and runs[1][1] == PENDING
    assert await page.evaluate("window.__notReloaded") is True

    async with working(database_dsn, registry):
        await link.click()
        await page.wait_for_url(f"**/runs/{new_run}")
        await watched.state("connected")
        await watched.text_becomes(".run-summary [data-field=status]", "Running", 20000)
        assert await visible_actions(page) == ["Cancel run"]
        release.set()
        await watched.text_becomes(".run-summary [data-field=status]", "Completed")
        # Completed: neither cancel nor retry.
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#run-actions form')].every(f => f.hidden)"
        )
    assert watched.errors == []


async def test_cancel_a_running_run_from_its_page_and_from_its_row(
    server: RunningServer, writer: Writer, watched: Watched, database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()

    @registry.job("long", max_concurrency=2)
    async def long(ctx: JobContext, data: Any) -> Any:
        await asyncio.sleep(60)

    await registry.register(database)
    page = watched.page
    first = await writer.insert_run("long", status=PENDING)
    second = await writer.insert_run("long", status=PENDING)
    async with working(database_dsn, registry):

        async def both_running() -> bool:
            return all([await status_of(writer, r) == RUNNING for r in (first, second)])

        await eventually(both_running, what="the runs to start")
        await page.goto(server.path(f"runs/{first}"))
        await watched.state("connected")
        await page.click("#run-actions form[action$='/cancel'] button")
        # "Keep" asks nothing of the server.
        await page.wait_for_selector("#confirm-action[open]")
        await page.click("#confirm-action-cancel")
        await asyncio.sleep(0.3)
        assert await status_of(writer, first) == RUNNING
        await page.click("#run-actions form[action$='/cancel'] button")
        await confirm(page, first[:8])
        await watched.text_becomes(".run-summary [data-field=status]", "Cancelled")
        assert await visible_actions(page) == ["Retry as a new run"]

        # From the runs list: the row's button follows the row's status.
        await page.goto(server.path("runs"))
        await watched.state("connected")
        row = f'tr[data-run-id="{second}"]'
        assert await page.locator(f"{row} form[action$='/cancel']:not([hidden])").count() == 1
        await page.click(f"{row} form[action$='/cancel'] button")
        await confirm(page, second[:8])
        await watched.text_becomes(f"{row} .status", "Cancelled")
        await page.wait_for_selector(f"{row} form[action$='/retry']:not([hidden])")
    assert await status_of(writer, first) == CANCELLED
    assert await status_of(writer, second) == CANCELLED
    assert watched.errors == []


async def test_a_conflict_and_a_bad_input_are_shown_beside_the_button(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    await define(writer, "email")
    run_id = await writer.insert_run("email", status=COMPLETED)
    page = watched.page
    await page.goto(server.path(f"runs/{run_id}"))
    await watched.state("connected")
    # A page that still offers Cancel when the run has completed meanwhile: a 409.
    await page.evaluate(
        "document.querySelector('#run-actions form[action$=\"/cancel\"]').hidden = false"
    )
    await page.click("#run-actions form[action$='/cancel'] button")
    await confirm(page, run_id[:8])
    error = page.locator("#run-actions .action-error")
    await error.wait_for()
    assert "is Completed" in await error.inner_text()
    assert await status_of(writer, run_id) == COMPLETED

    await page.goto(server.path("jobs"))
    await watched.state("connected")
    row = 'tr[data-job-type-id="email"]'
    await page.fill(f"{row} .trigger-input", "{not json")
    await page.press(f"{row} .trigger-input", "Enter")
    await page.locator(f"{row} .action-error").wait_for()
    assert "not valid JSON" in await page.locator(f"{row} .action-error").inner_text()
    assert len(await runs_of(writer, "email")) == 1
    # Then a good input: the run is made with it, its link shown.
    await page.fill(f"{row} .trigger-input", '{"to": "ada@example.com"}')
    await page.click(f"{row} form[action$='/trigger'] button")
    await page.locator(f"{row} .action-done a").wait_for()
    runs = await runs_of(writer, "email")
    assert len(runs) == 2 and runs[1][3] == '{"to":"ada@example.com"}'
    # Disable asks first, then the row says so and offers Enable.
    await page.click(f"{row} form[action$='/disable'] button")
    await confirm(page, "Disable email")
    await watched.text_becomes(f"{row} .enabled", "no")
    assert "Enable" in await visible_actions(page)
    assert watched.errors == []


async def test_bulk_discard_a_filtered_dead_letter(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    await dead_letter(writer, "email", 3)
    await dead_letter(writer, "report", 2)
    page = watched.page
    await page.goto(server.path("dead-letter?status=Pending&job_type=email"))
    await watched.state("connected")
    assert "3 Pending entries of email" in (await page.text_content("#bulk-actions") or "")
    await page.click("#bulk-actions form[action$='/dead-letter/discard'] button")
    await confirm(page, "Discard 3 Pending entries of email")
    await page.locator("#bulk-actions .action-done").wait_for()
    assert "3 changed" in await page.locator("#bulk-actions .action-done").inner_text()
    assert await dead_letter_statuses(writer) == {
        "email": [DL_DISCARDED] * 3,
        "report": [DL_PENDING] * 2,
    }
    await page.wait_for_selector("#dead-letter-changed:not([hidden])")
    # One entry: requeue, the row shows its new status and the new run's link.
    await page.goto(server.path("dead-letter?job_type=report"))
    await watched.state("connected")
    first = page.locator("#dead-letter-body tr").first
    await first.locator("form[action$='/requeue'] button").click()
    await first.locator(".action-done a").wait_for()
    assert await first.locator(".entry-status .status").inner_text() == "Requeued"
    assert [row[2] for row in await runs_of(writer, "report")][-1] == 3  # Api
    assert watched.errors == []


# -- who may act ------------------------------------------------------------------------


@pytest.mark.parametrize("server_settings", [ROLE_SETTINGS])
async def test_a_viewer_sees_no_action_buttons_an_operator_does(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    failed = await writer.insert_run("email", status=FAILED)
    await define(writer, "email")
    await dead_letter(writer, "email", 1)
    pages = (f"runs/{failed}", "runs", "", "jobs", "dead-letter")
    async with opened(browser) as viewer:
        await sign_in(viewer, server, "runs", VIEWER_TOKEN)
        for path in pages:
            await viewer.page.goto(server.path(path))
            assert await viewer.page.locator(ACTION_FORMS).count() == 0, path
            assert await viewer.page.locator("meta[name=csrf-token], #confirm-action").count() == 0
            assert await viewer.page.locator("th", has_text="Actions").count() == 0
        assert await viewer.page.locator("nav a", has_text="Activity").count() == 1
    async with opened(browser) as operator:
        await sign_in(operator, server, "runs", OPERATOR_TOKEN)
        for path in pages:
            await operator.page.goto(server.path(path))
            assert await visible_actions(operator.page), path


@pytest.mark.parametrize("server_settings", [ROLE_SETTINGS])
async def test_a_cross_site_form_post_with_the_session_cookie_is_refused(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    run_id = await writer.insert_run("email", status=PENDING)
    evil = "http://evil.example/"
    async with opened(browser) as operator:
        page, context = operator.page, operator.context
        await sign_in(operator, server, f"runs/{run_id}", OPERATOR_TOKEN)
        assert await visible_actions(page) == ["Cancel run"]
        # Another site's page posting to the dashboard: the browser keeps the Strict
        # cookie to itself, so the server sees no session at all.
        await page.route(
            evil,
            lambda route: route.fulfill(
                content_type="text/html",
                body=f'<form id="f" method="post" action="{server.path(f"runs/{run_id}/cancel")}">'
                '<input name="idempotency_key" value="x"></form>'
                '<button form="f" id="go">go</button>',
            ),
        )
        await page.goto(evil)
        async with page.expect_navigation():
            await page.click("#go")
        assert await status_of(writer, run_id) == PENDING
        # The same post carrying the session cookie (as a browser without SameSite
        # would send it): refused, with a foreign Origin or without the page's token.
        url = server.path(f"runs/{run_id}/cancel")
        cookies = await context.cookies(server.url)
        assert cookies, "signed in: a session cookie"
        forged = await context.request.post(
            url, form={"idempotency_key": "y"}, headers={"Origin": evil.rstrip("/")}
        )
        assert forged.status == 403
        parts = urlsplit(server.url)
        same_site = await context.request.post(
            url,
            form={"idempotency_key": "z"},
            headers={"Origin": f"{parts.scheme}://{parts.netloc}"},
        )
        assert same_site.status == 403
        api = await context.request.post(
            server.path(f"api/runs/{run_id}/cancel"), headers={"Origin": evil.rstrip("/")}
        )
        assert api.status == 403
    assert await status_of(writer, run_id) == PENDING
    trail = await writer.execute(
        "SELECT outcome, http_status FROM zapjobs.sse_activity ORDER BY at"
    )
    assert trail and all(row == ("forbidden", 403) for row in trail)


# -- without JavaScript -----------------------------------------------------------------


async def notice(page: Page) -> str:
    return (await page.text_content("#action-notice") or "").strip()


async def test_the_same_actions_without_javascript_through_the_forms(
    server: RunningServer, writer: Writer, browser: Browser
) -> None:
    await define(writer, "email")
    failed = await writer.insert_run("email", status=FAILED)
    running = await writer.insert_run("email", status=RUNNING)
    await dead_letter(writer, "email", 2)
    await dead_letter(writer, "report", 1)
    async with opened(browser, java_script_enabled=False) as plain:
        page = plain.page
        # Retry: back to the run page, which says what happened.
        before = len(await runs_of(writer, "email"))
        await page.goto(server.path(f"runs/{failed}"))
        async with page.expect_navigation():
            await page.click("#run-actions form[action$='/retry'] button")
        assert page.url == server.path(f"runs/{failed}")
        assert (await notice(page)).startswith(f"Retried run {failed}: new run ")
        assert len(await runs_of(writer, "email")) == before + 1
        await page.reload()
        assert await page.locator("#action-notice").count() == 0  # shown once

        # Cancel asks first: the form needs its "sure" box.
        await page.goto(server.path(f"runs/{running}"))
        cancel = "#run-actions form[action$='/cancel']"
        await page.click(f"{cancel} button")
        await asyncio.sleep(0.3)
        assert page.url == server.path(f"runs/{running}")
        assert await status_of(writer, running) == RUNNING
        await page.check(f"{cancel} input[name=confirm]")
        async with page.expect_navigation():
            await page.click(f"{cancel} button")
        assert await notice(page) == f"Cancelled run {running}"
        assert await page.locator(".run-summary [data-field=status]").inner_text() == "Cancelled"
        assert await visible_actions(page) == ["Retry as a new run"]
        # A run that completed while the page showed it Running: the conflict is the notice.
        late = await writer.insert_run("email", status=RUNNING)
        await page.goto(server.path(f"runs/{late}"))
        await writer.execute("UPDATE zapjobs.runs SET status = 3 WHERE id = %s", (late,))
        await page.check(f"{cancel} input[name=confirm]")
        async with page.expect_navigation():
            await page.click(f"{cancel} button")
        assert "is Completed" in await notice(page)
        assert await page.locator("#action-notice.flash-conflict").count() == 1
        assert await status_of(writer, late) == COMPLETED

        # Trigger with an input, from the jobs page; then disable.
        await page.goto(server.path("jobs"))
        row = 'tr[data-job-type-id="email"]'
        await page.fill(f"{row} .trigger-input", '{"n": 1}')
        async with page.expect_navigation():
            await page.click(f"{row} form[action$='/trigger'] button")
        assert page.url == server.path("jobs")
        assert (await notice(page)).startswith("Triggered email: run ")
        assert (await runs_of(writer, "email"))[-1][3] == '{"n":1}'
        disable = f"{row} form[action$='/disable']"
        await page.check(f"{disable} input[name=confirm]")
        async with page.expect_navigation():
            await page.click(f"{disable} button")
        assert await page.locator(f"{row} .enabled").inner_text() == "no"
        assert await visible_actions(page) == ["Trigger", "Enable"]

        # Bulk discard of the filtered dead letter: the count is in the button.
        await page.goto(server.path("dead-letter?status=Pending&job_type=email"))
        discard = "#bulk-actions form[action$='/dead-letter/discard']"
        assert await page.locator(f"{discard} button").inner_text() == "Discard all 2 matching"
        await page.check(f"{discard} input[name=confirm]")
        async with page.expect_navigation():
            await page.click(f"{discard} button")
        assert page.url == server.path("dead-letter?status=Pending&job_type=email")
        assert await notice(page) == "Discarded 2 dead-letter entries"
        assert await page.locator("#bulk-actions").count() == 0  # nothing left to match
    assert await dead_letter_statuses(writer) == {
        "email": [DL_DISCARDED] * 2,
        "report": [DL_PENDING],
    }


# -- the changed pages, looked at -------------------------------------------------------


async def seed_pages(writer: Writer) -> dict[str, str]:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, cron_expression)"
        " VALUES ('nightly-report', 'Nightly report', '0 3 * * *'),"
        " ('send-email', 'Send email', NULL)"
    )
    failed = await writer.insert_run("nightly-report", status=FAILED)
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = 'SMTP timeout', duration_ms = 1500,"
        " completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
        (failed,),
    )
    running = await writer.insert_run("send-email", status=RUNNING)
    await writer.execute(
        "UPDATE zapjobs.runs SET started_at = now() AT TIME ZONE 'utc' WHERE id = %s", (running,)
    )
    await dead_letter(writer, "nightly-report", 3)
    return {"failed": failed, "running": running}


@pytest.mark.parametrize("width", [360, 390, 1366])
async def test_the_pages_with_actions_fit_and_work_by_keyboard(
    server: RunningServer, writer: Writer, browser: Browser, width: int, tmp_path: Path
) -> None:
    """Every changed page fits the width; with ZAPJOBS_SCREENSHOTS_DIR set, writes their
    screenshots (both themes) there."""
    runs = await seed_pages(writer)
    folder = os.environ.get("ZAPJOBS_SCREENSHOTS_DIR")
    paths = {
        "run": f"runs/{runs['failed']}",
        "runs": "runs",
        "jobs": "jobs",
        "dead-letter": "dead-letter?status=Pending",
    }
    async with opened(browser, viewport={"width": width, "height": 900}) as shown:
        page = shown.page
        for name, path in paths.items():
            await page.goto(server.path(path))
            await shown.state("connected")
            width_now: int = await page.evaluate("document.documentElement.scrollWidth")
            assert width_now <= width, (name, width)
            if folder:
                for theme in ("light", "dark"):
                    await page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
                    await page.screenshot(
                        path=str(Path(folder) / f"actions-{name}-{width}-{theme}.png"),
                        full_page=True,
                    )
        # By keyboard: Tab to the bulk discard, Enter opens the question, Escape keeps.
        await page.goto(server.path("dead-letter?status=Pending"))
        await shown.state("connected")
        await page.focus("#bulk-actions form[action$='/dead-letter/requeue'] button")
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.textContent.trim()")
        assert focused == "Discard all 3 matching"
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#confirm-action[open]")
        assert await page.evaluate("document.activeElement.id") == "confirm-action-cancel"
        if folder:
            await page.screenshot(path=str(Path(folder) / f"actions-confirm-{width}.png"))
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#confirm-action", state="hidden")
        assert await dead_letter_statuses(writer) == {"nightly-report": [DL_PENDING] * 3}
        assert shown.errors == []


async def test_the_activity_page_shows_each_action_as_it_is_taken(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    await define(writer, "activity-live")
    page = watched.page
    await page.goto(server.path("activity"))
    await watched.state("connected")
    await page.evaluate("window.__notReloaded = true")
    trigger = server.path("api/jobs/activity-live/trigger")
    async with aiohttp.ClientSession() as http, http.post(trigger, json={}) as answer:
        assert answer.status == 201
        run_id = (await answer.json())["id"]
    first = page.locator("#activity-body tr").first
    await first.locator("td.action", has_text="trigger").wait_for(timeout=5000)
    base = server.settings.normalized_base_path
    assert await first.locator("td.message a").get_attribute("href") == f"{base}/runs/{run_id}"
    assert await page.locator("#activity-empty").is_hidden()
    assert await page.evaluate("window.__notReloaded") is True
    assert watched.errors == [] and watched.csp_violations == []
