"""Signing in, hostile job data and the Content-Security-Policy, in real headless Chromium."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Page

from tests.conftest import RunningServer
from tests.e2e.conftest import Watched
from tests.support import Writer

pytestmark = pytest.mark.browser

TOKEN = "tok-" + "a1b2c3d4" * 4
TOKEN_SETTINGS: dict[str, Any] = {"auth": "token", "tokens": TOKEN, "poll_interval": 1.0}
PAYLOADS = ("<img src=x onerror=alert(1)>", "<script>alert(1)</script>")


def hostile(column: str) -> str:
    """A value of this column that would run script if it were inserted as HTML."""
    return f"{column}{PAYLOADS[0]}{PAYLOADS[1]}"


async def assert_nothing_ran(watched: Watched) -> None:
    """No dialog, no script error, no hostile element made out of the database's text."""
    assert watched.dialogs == []
    assert watched.errors == []
    # An <img src=x> that became an element would have failed to load ("x" is a 4xx).
    assert [text for text in watched.console_errors if "/x" in text] == []
    injected = await watched.page.eval_on_selector_all(
        "main img, main script, main [onerror]", "nodes => nodes.length"
    )
    assert injected == 0


async def sign_in(
    watched: Watched, server: RunningServer, relative: str, token: str = TOKEN
) -> None:
    """Open a page, get sent to the sign-in form, sign in, and land back on the page."""
    page = watched.page
    await page.goto(server.path(relative))
    assert "/zapjobs/login" in page.url
    await page.fill("#login-token", token)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == server.path(relative)


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_sign_in_then_the_dashboard_is_live(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server.path("runs"))
    assert "/zapjobs/login" in page.url
    await page.fill("#login-token", "tok-" + "0" * 32)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert await page.inner_text("[role=alert]") == "That token is not valid."
    await sign_in(watched, server, "runs")
    cookies = await watched.context.cookies()
    session = next(cookie for cookie in cookies if cookie["name"] == "zapjobs_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert "zapjobs_session" not in await page.evaluate("document.cookie")
    await watched.state("connected")
    run_id = await writer.insert_run("signed-in-job")
    await page.wait_for_selector(f'tr[data-run-id="{run_id}"]')
    await assert_nothing_ran(watched)


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_sign_out_ends_the_session(server: RunningServer, watched: Watched) -> None:
    page = watched.page
    await sign_in(watched, server, "workers")
    await watched.state("connected")
    async with page.expect_navigation():
        await page.click(".sign-out button")
    assert "/zapjobs/login" in page.url
    assert not [c for c in await watched.context.cookies() if c["name"] == "zapjobs_session"]
    await page.goto(server.path("runs"))
    assert "/zapjobs/login" in page.url  # the dashboard wants a new sign-in
    assert await page.query_selector(".sign-out") is None


async def _insert_hostile_rows(writer: Writer, suffix: str) -> dict[str, str]:
    """One row of every table the dashboard shows, every text column hostile."""
    values = {
        column: hostile(f"{column}-{suffix}")
        for column in (
            "job_type_id",
            "display_name",
            "message",
            "category",
            "error",
            "stack_trace",
            "hostname",
            "worker_id",
        )
    }
    run_id = str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES (%s, %s)",
        (values["job_type_id"], values["display_name"]),
    )
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, worker_id, error_message,"
        " stack_trace, created_at, completed_at) VALUES (%s, %s, 4, %s, %s, %s,"
        " now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc')",
        (
            run_id,
            values["job_type_id"],
            values["worker_id"],
            values["error"],
            values["stack_trace"],
        ),
    )
    await writer.execute(
        "INSERT INTO zapjobs.logs (id, run_id, level, message, category, timestamp)"
        " VALUES (gen_random_uuid(), %s, 4, %s, %s, now() AT TIME ZONE 'utc')",
        (run_id, values["message"], values["category"]),
    )
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id,"
        " current_job_type, timestamp) VALUES (gen_random_uuid(), %s, %s, 1, %s,"
        " now() AT TIME ZONE 'utc')",
        (values["worker_id"], values["hostname"], values["job_type_id"]),
    )
    await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, error_message,"
        " stack_trace, attempt_count) VALUES (gen_random_uuid(), %s, %s, %s, %s, 3)",
        (run_id, values["job_type_id"], values["error"], values["stack_trace"]),
    )
    values["run_id"] = run_id
    return values


# Which page shows which hostile column.
SHOWN_ON = {
    "runs": ("job_type_id", "error", "worker_id"),
    "run": ("job_type_id", "message", "category", "error", "stack_trace", "worker_id"),
    "jobs": ("job_type_id", "display_name"),
    "workers": ("hostname", "worker_id", "job_type_id"),
    "dead-letter": ("job_type_id", "error", "stack_trace"),
    "": ("job_type_id",),
}


async def _main_text(page: Page) -> str:
    text: str = await page.evaluate("document.querySelector('main').textContent")
    return text


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_hostile_text_in_every_column_is_shown_as_text_and_runs_nothing(
    server: RunningServer, writer: Writer, watched: Watched
) -> None:
    page = watched.page
    rendered = await _insert_hostile_rows(writer, "server")
    await sign_in(watched, server, "")
    for name, columns in SHOWN_ON.items():
        relative = f"runs/{rendered['run_id']}" if name == "run" else name
        await page.goto(server.path(relative))
        await watched.state("connected")
        text = await _main_text(page)
        for column in columns:
            assert rendered[column] in text, (relative, column)
        await assert_nothing_ran(watched)

    # The same columns arriving live, rendered by the client from the stream.
    for name in ("runs", "workers", "run"):
        if name == "run":
            await page.goto(server.path(f"runs/{rendered['run_id']}"))
        else:
            await page.goto(server.path(name))
        await watched.state("connected")
        if name == "run":
            live = {
                "message": hostile("message-live"),
                "category": hostile("category-live"),
                "error": hostile("error-live"),
                "stack_trace": hostile("stack_trace-live"),
            }
            await writer.execute(
                "INSERT INTO zapjobs.logs (id, run_id, level, message, category, timestamp)"
                " VALUES (gen_random_uuid(), %s, 4, %s, %s, now() AT TIME ZONE 'utc')",
                (rendered["run_id"], live["message"], live["category"]),
            )
            await writer.execute(
                "UPDATE zapjobs.runs SET error_message = %s, stack_trace = %s WHERE id = %s",
                (live["error"], live["stack_trace"], rendered["run_id"]),
            )
        else:
            live = await _insert_hostile_rows(writer, f"live-{name}")
            live = {column: live[column] for column in SHOWN_ON[name]}
        for value in live.values():
            await page.wait_for_function(
                "text => document.querySelector('main').textContent.includes(text)",
                arg=value,
            )
        await assert_nothing_ran(watched)


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_an_inline_script_injected_into_a_page_is_blocked_by_the_csp(
    server: RunningServer, watched: Watched
) -> None:
    page = watched.page
    await sign_in(watched, server, "")
    outcome = await page.evaluate(
        """() => new Promise(resolve => {
            const violations = [];
            document.addEventListener("securitypolicyviolation", event => {
                violations.push(event.violatedDirective);
            });
            const script = document.createElement("script");
            script.textContent = "window.__injected = true;";
            document.body.appendChild(script);
            const handler = document.createElement("div");
            handler.innerHTML = '<img src="data:," onerror="window.__handler = true">';
            document.body.appendChild(handler);
            setTimeout(() => resolve({
                ran: window.__injected === true,
                handlerRan: window.__handler === true,
                violations: violations,
            }), 500);
        })"""
    )
    assert outcome["ran"] is False
    assert outcome["handlerRan"] is False
    assert any(v.startswith("script-src") for v in outcome["violations"]), outcome
    assert watched.dialogs == []


@pytest.mark.parametrize(
    "server_settings", [TOKEN_SETTINGS | {"session_lifetime": 4.0, "heartbeat": 0.5}]
)
async def test_an_expired_session_shows_disconnected_with_a_sign_in_link(
    server: RunningServer, watched: Watched
) -> None:
    page = watched.page
    await sign_in(watched, server, "runs")
    await watched.state("connected")
    await page.wait_for_selector('#connection-status[data-state="disconnected"]', timeout=8000)
    link = await page.wait_for_selector("#connection-status a")
    assert link is not None
    href = await link.get_attribute("href")
    assert href is not None and href.startswith("/zapjobs/login")
    async with page.expect_navigation():
        await link.click()
    assert "/zapjobs/login" in page.url
    await page.fill("#login-token", TOKEN)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == server.path("runs")
    await watched.state("connected")
