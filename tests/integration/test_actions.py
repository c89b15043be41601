"""The operators' actions on a real PostgreSQL: what each one writes, when it refuses, and
how it loses a race to an executor (the outcome that committed first stands)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import psycopg2
import pytest
import structlog.testing

from tests.conftest import RunningServer
from tests.support import Writer, sse_connect

PENDING, SCHEDULED, RUNNING, COMPLETED, FAILED, CANCELLED, AWAITING_RETRY = range(7)
RUN_STATUS_NAMES = (
    "Pending",
    "Scheduled",
    "Running",
    "Completed",
    "Failed",
    "Cancelled",
    "AwaitingRetry",
)
MANUAL, API = 0, 3
IDENTITY = "address:127.0.0.1"


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    async with http.post(url, json=body, headers=headers) as response:
        answer = await response.json()
        assert response.content_type == "application/json"
        if status is not None:
            assert response.status == status, answer
        return answer


async def row_of(writer: Writer, table: str, key: str, value: str) -> dict[str, Any]:
    with writer._connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM zapjobs.{table} WHERE {key} = %s", (value,))
        names = [column.name for column in cursor.description]
        found = cursor.fetchone()
    assert found is not None, (table, value)
    return dict(zip(names, found, strict=True))


async def define(
    writer: Writer,
    job_type: str = "email",
    queue: str = "mail",
    config_json: str | None = None,
    **columns: Any,
) -> None:
    names = ["job_type_id", "display_name", "queue", "config_json", *columns]
    values = [job_type, job_type.title(), queue, config_json, *columns.values()]
    await writer.execute(
        f"INSERT INTO zapjobs.definitions ({', '.join(names)})"
        f" VALUES ({', '.join(['%s'] * len(values))})",
        values,
    )


async def insert_run(
    writer: Writer, status: int, queue: str = "mail", input_json: str | None = '{"n":1}'
) -> str:
    run_id = str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, queue, input_json, created_at)"
        " VALUES (%s, 'email', %s, %s, %s, now() AT TIME ZONE 'utc')",
        (run_id, status, queue, input_json),
    )
    return run_id


async def insert_dead_letter(
    writer: Writer, count: int = 1, job_type: str = "email", status: int = 0
) -> list[str]:
    rows = await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, queue, input_json,"
        " error_message, attempt_count, moved_at, status)"
        " SELECT gen_random_uuid(), gen_random_uuid(), %s, 'mail', '{\"n\":' || g || '}',"
        " 'boom', 3, (now() AT TIME ZONE 'utc') - g * interval '1 second', %s"
        " FROM generate_series(1, %s) AS g RETURNING id::text",
        (job_type, status, count),
    )
    return [row[0] for row in rows]


async def activity(http: aiohttp.ClientSession, server: RunningServer) -> list[dict[str, Any]]:
    async with http.get(server.path("api/activity?limit=500")) as response:
        body = await response.json()
    entries: list[dict[str, Any]] = body["activity"]
    return entries


# -- trigger ----------------------------------------------------------------------------


async def test_trigger_writes_a_pending_manual_run_on_the_definitions_queue(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer, config_json='{"default":true}')
    created = await post(http, server.path("api/jobs/email/trigger"), {"input": {"to": "ada"}}, 201)
    async with http.get(server.path(f"api/runs/{created['id']}")) as response:
        assert await response.json() == created
    row = await row_of(writer, "runs", "id", created["id"])
    assert row["status"] == PENDING and row["trigger_type"] == MANUAL
    assert row["triggered_by"] == IDENTITY and row["queue"] == "mail"
    assert json.loads(row["input_json"]) == {"to": "ada"}
    assert row["attempt_number"] == 1 and row["worker_id"] is None

    for body in (None, {}, {"input": None}):
        created = await post(http, server.path("api/jobs/email/trigger"), body, 201)
        row = await row_of(writer, "runs", "id", created["id"])
        assert row["input_json"] == '{"default":true}', body
    created = await post(http, server.path("api/jobs/email/trigger"), {"input": [1, "x"]}, 201)
    assert created["inputJson"] == '[1,"x"]'


async def test_trigger_refuses_bad_bodies_and_unknown_job_types(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer)
    url = server.path("api/jobs/email/trigger")
    for raw in (b"{not json", b"[1, 2]", b'"text"'):
        async with http.post(url, data=raw) as response:
            assert response.status == 400
            assert (await response.json())["error"].startswith("body:")
    answer = await post(http, server.path("api/jobs/nope/trigger"), {}, 404)
    assert "nope" in answer["error"]
    async with http.post(server.path("jobs/email/trigger"), data={"input": "{x"}) as page:
        assert page.status == 400
        assert "input: not valid JSON" in await page.text()
    assert not await writer.execute("SELECT 1 FROM zapjobs.runs")
    outcomes = [(e["action"], e["outcome"], e["httpStatus"]) for e in await activity(http, server)]
    assert outcomes.count(("trigger", "invalid", 400)) == 4
    assert ("trigger", "not_found", 404) in outcomes


async def test_a_trigger_form_goes_back_with_a_notice(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer)
    referer = server.path("jobs?x=1")
    async with http.post(
        server.path("jobs/email/trigger"),
        data={"input": '{"to": "bob"}', "idempotency_key": "form-1"},
        headers={"Referer": referer},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/zapjobs/jobs?x=1"
        assert "zapjobs_notice" in response.cookies
    (run_input,) = await writer.execute("SELECT input_json FROM zapjobs.runs")
    assert json.loads(run_input[0]) == {"to": "bob"}


# -- cancel -----------------------------------------------------------------------------


async def test_cancel_from_every_state_that_is_not_final(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    for status in (PENDING, SCHEDULED, RUNNING, AWAITING_RETRY):
        run_id = await insert_run(writer, status)
        answer = await post(http, server.path(f"api/runs/{run_id}/cancel"), None, 200)
        assert answer["status"] == "Cancelled" and answer["completedAt"] is not None
        row = await row_of(writer, "runs", "id", run_id)
        assert row["status"] == CANCELLED and row["completed_at"] is not None
    for status in (COMPLETED, FAILED, CANCELLED):
        run_id = await insert_run(writer, status)
        before = await row_of(writer, "runs", "id", run_id)
        answer = await post(http, server.path(f"api/runs/{run_id}/cancel"), None, 409)
        assert answer["status"] == RUN_STATUS_NAMES[status]
        assert RUN_STATUS_NAMES[status] in answer["error"]
        assert await row_of(writer, "runs", "id", run_id) == before
    await post(http, server.path(f"api/runs/{uuid.uuid4()}/cancel"), None, 404)
    answer = await post(http, server.path("api/runs/not-a-uuid/cancel"), None, 400)
    assert answer["error"].startswith("id:")


async def test_cancel_racing_a_completion_loses_to_the_commit_that_came_first(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await insert_run(writer, RUNNING)
    executor = psycopg2.connect(writer.dsn)
    try:
        with executor.cursor() as cursor:
            # The executor's completion is written but not yet committed: it holds the row.
            cursor.execute(
                "UPDATE zapjobs.runs SET status = 3, completed_at = now() AT TIME ZONE 'utc'"
                " WHERE id = %s AND status = 2",
                (run_id,),
            )
            cancel = asyncio.create_task(post(http, server.path(f"api/runs/{run_id}/cancel")))
            await asyncio.sleep(0.5)
            assert not cancel.done()  # waiting for the executor's row lock
            executor.commit()
        answer = await asyncio.wait_for(cancel, 10)
    finally:
        executor.close()
    assert answer["status"] == "Completed"
    assert (await row_of(writer, "runs", "id", run_id))["status"] == COMPLETED

    # The other way round: the cancel commits first, the executor's completion (which
    # only finishes a run still Running) then changes nothing.
    run_id = await insert_run(writer, RUNNING)
    await post(http, server.path(f"api/runs/{run_id}/cancel"), None, 200)
    done = await writer.execute(
        "UPDATE zapjobs.runs SET status = 3 WHERE id = %s AND status = 2 RETURNING id", (run_id,)
    )
    assert done == [] and (await row_of(writer, "runs", "id", run_id))["status"] == CANCELLED


# -- retry ------------------------------------------------------------------------------


async def test_retry_makes_a_new_pending_run_linked_to_the_original(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    for status in (FAILED, CANCELLED):
        original = await insert_run(writer, status, queue="slow", input_json='{"n":7}')
        created = await post(http, server.path(f"api/runs/{original}/retry"), None, 201)
        row = await row_of(writer, "runs", "id", created["id"])
        assert (row["status"], row["job_type_id"], row["queue"], row["input_json"]) == (
            PENDING,
            "email",
            "slow",
            '{"n":7}',
        )
        assert row["triggered_by"] == IDENTITY
        link = await row_of(writer, "sse_run_retries", "run_id", created["id"])
        assert str(link["retry_of"]) == original
        assert (await row_of(writer, "runs", "id", original))["status"] == status
    for status in (PENDING, RUNNING, COMPLETED, AWAITING_RETRY):
        run_id = await insert_run(writer, status)
        answer = await post(http, server.path(f"api/runs/{run_id}/retry"), None, 409)
        assert answer["status"] == RUN_STATUS_NAMES[status]
    await post(http, server.path(f"api/runs/{uuid.uuid4()}/retry"), None, 404)
    (count,) = await writer.execute("SELECT count(*) FROM zapjobs.runs")
    assert count[0] == 2 + 2 + 4


# -- dead letter ------------------------------------------------------------------------


async def test_requeue_discard_and_archive_one_entry(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    requeued, discarded, archived = await insert_dead_letter(writer, 3)
    answer = await post(http, server.path(f"api/dead-letter/{requeued}/requeue"), None, 200)
    entry = await row_of(writer, "dead_letter", "id", requeued)
    assert entry["status"] == 1 and entry["requeued_at"] is not None
    assert answer["status"] == "Requeued" and answer["requeuedRunId"] == str(
        entry["requeued_run_id"]
    )
    run = await row_of(writer, "runs", "id", str(entry["requeued_run_id"]))
    assert (run["status"], run["trigger_type"], run["job_type_id"], run["queue"]) == (
        PENDING,
        API,
        "email",
        "mail",
    )
    assert run["input_json"] == entry["input_json"] and run["triggered_by"] == IDENTITY

    await post(http, server.path(f"api/dead-letter/{discarded}/discard"), None, 200)
    await post(http, server.path(f"api/dead-letter/{archived}/archive"), None, 200)
    assert (await row_of(writer, "dead_letter", "id", discarded))["status"] == 2
    assert (await row_of(writer, "dead_letter", "id", archived))["status"] == 3

    # Only from Pending: an entry already requeued (or settled) is a 409, unchanged.
    for entry_id, name in ((requeued, "Requeued"), (discarded, "Discarded")):
        for action in ("requeue", "discard", "archive"):
            url = server.path(f"api/dead-letter/{entry_id}/{action}")
            assert (await post(http, url, None, 409))["status"] == name
    (runs,) = await writer.execute("SELECT count(*) FROM zapjobs.runs")
    assert runs[0] == 1
    await post(http, server.path(f"api/dead-letter/{uuid.uuid4()}/requeue"), None, 404)
    await post(http, server.path("api/dead-letter/123/archive"), None, 400)


async def test_two_requeues_of_one_entry_at_once_make_one_run(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    (entry,) = await insert_dead_letter(writer)
    url = server.path(f"api/dead-letter/{entry}/requeue")
    answers = await asyncio.gather(*(http.post(url) for _ in range(5)))
    statuses = sorted(answer.status for answer in answers)
    for answer in answers:
        answer.release()
    assert statuses == [200, 409, 409, 409, 409]
    (runs,) = await writer.execute("SELECT count(*) FROM zapjobs.runs")
    assert runs[0] == 1


@pytest.mark.parametrize("server_settings", [{"action_batch_size": 7}])
async def test_bulk_actions_change_every_matching_entry_in_batches(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await insert_dead_letter(writer, 30, "email")
    await insert_dead_letter(writer, 4, "report")
    await insert_dead_letter(writer, 3, "email", status=2)
    async with http.get(server.path("api/dead-letter?job_type=report&status=Pending")) as listed:
        assert len((await listed.json())["deadLetter"]) == 4  # the page's filter
    answer = await post(
        http, server.path("api/dead-letter/requeue"), {"status": "Pending", "job_type": "email"}
    )
    assert answer == {"changed": 30}
    rows = await writer.execute(
        "SELECT d.job_type_id, d.status, r.status, r.input_json = d.input_json"
        " FROM zapjobs.dead_letter AS d LEFT JOIN zapjobs.runs AS r ON r.id = d.requeued_run_id"
    )
    assert sorted(set(rows), key=str) == sorted(
        {("email", 1, PENDING, True), ("email", 2, None, None), ("report", 0, None, None)},
        key=str,
    )
    assert await post(http, server.path("api/dead-letter/discard"), {"status": "Archived"}) == {
        "changed": 0
    }
    assert await post(http, server.path("api/dead-letter/archive"), {}) == {"changed": 4}
    answer = await post(http, server.path("api/dead-letter/discard"), {"status": "Lost"}, 400)
    assert answer["error"].startswith("status:")
    (entry,) = [e for e in await activity(http, server) if e["changed"] == 30]
    assert entry["filter"] == {"status": "Pending", "job_type": "email"}
    assert entry["targetId"] is None and entry["action"] == "requeue"


# -- enable / disable -------------------------------------------------------------------


async def test_disable_clears_the_next_run_and_enable_plans_an_interval_again(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer, schedule_type=1, interval_minutes=5)
    await writer.execute(
        "UPDATE zapjobs.definitions SET next_run_at = now() AT TIME ZONE 'utc'"
        " + interval '1 minute'"
    )
    job = await post(http, server.path("api/jobs/email/disable"), None, 200)
    assert job["isEnabled"] is False and job["nextRunAt"] is None
    row = await row_of(writer, "definitions", "job_type_id", "email")
    assert row["is_enabled"] is False and row["next_run_at"] is None
    assert row["schedule_type"] == 1  # the schedule is kept, for enabling again
    again = await post(http, server.path("api/jobs/email/disable"), None, 200)
    assert again == job
    job = await post(http, server.path("api/jobs/email/enable"), None, 200)
    assert job["isEnabled"] is True and job["nextRunAt"] is not None
    await post(http, server.path("api/jobs/nope/enable"), None, 404)
    outcomes = [e["outcome"] for e in await activity(http, server)]
    assert outcomes == ["not_found", "done", "unchanged", "done"]


# -- idempotency, audit trail, live event -----------------------------------------------


async def test_a_resubmitted_action_acts_once_and_gets_the_same_answer(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer)
    url = server.path("api/jobs/email/trigger")
    key = {"Idempotency-Key": "click-1"}
    answers = await asyncio.gather(*(post(http, url, {}, 201, key) for _ in range(4)))
    assert all(answer == answers[0] for answer in answers)
    other = await post(http, url, {}, 201, {"Idempotency-Key": "click-2"})
    assert other["id"] != answers[0]["id"]
    (runs,) = await writer.execute("SELECT count(*) FROM zapjobs.runs")
    assert runs[0] == 2
    for data in ({"idempotency_key": "form-9"}, {"idempotency_key": "form-9"}):
        async with http.post(
            server.path("jobs/email/trigger"), data=data, allow_redirects=False
        ) as response:
            assert response.status == 303
    (runs,) = await writer.execute("SELECT count(*) FROM zapjobs.runs")
    assert runs[0] == 3


async def test_the_activity_is_recorded_paged_and_streamed_to_its_viewers(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer)
    async with (
        sse_connect(http, server.path("events?topics=activity")) as watcher,
        sse_connect(http, server.path("events")) as everyone,
    ):
        created = await post(http, server.path("api/jobs/email/trigger"), {}, 201)
        await post(http, server.path(f"api/runs/{created['id']}/retry"), None, 409)
        events = await watcher.wait_named("ActionPerformed", 2)
        await everyone.wait_named("JobRunUpdated")
        assert not everyone.named("ActionPerformed")
    first, second = (event.json() for event in events)
    assert (first["action"], first["outcome"], first["runId"]) == ("trigger", "done", created["id"])
    assert (second["action"], second["outcome"], second["httpStatus"]) == ("retry", "conflict", 409)
    assert second["identity"] == IDENTITY and second["targetId"] == created["id"]

    for _ in range(5):
        await post(http, server.path(f"api/runs/{created['id']}/cancel"))
    seen: list[dict[str, Any]] = []
    url = server.path("api/activity?limit=3")
    while url:
        async with http.get(url) as response:
            page = await response.json()
        seen += page["activity"]
        url = page["next"] and server.path(f"api/activity?limit=3&before={page['next']}")
    assert len(seen) == 7 and seen[-2:] == [second, first]
    assert [e["at"] for e in seen] == sorted((e["at"] for e in seen), reverse=True)
    async with http.get(server.path("activity")) as page_response:
        html = await page_response.text()
        assert page_response.status == 200
    assert html.count("data-activity-id=") == 7 and "<script>" not in html


@pytest.mark.parametrize("server_settings", [{"idempotency_hours": 0.0001}])
async def test_an_idempotency_key_is_forgotten_after_its_time(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await define(writer)
    url, key = server.path("api/jobs/email/trigger"), {"Idempotency-Key": "k"}
    first = await post(http, url, {}, 201, key)
    assert await post(http, url, {}, 201, key) == first
    await asyncio.sleep(0.5)  # 0.0001 h
    assert (await post(http, url, {}, 201, key))["id"] != first["id"]
    (runs,) = await writer.execute("SELECT count(*) FROM zapjobs.runs")
    assert runs[0] == 2


async def test_a_form_notice_is_signed_and_read_once_and_the_action_is_logged(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await insert_run(writer, COMPLETED)
    with structlog.testing.capture_logs() as logs:
        async with http.post(
            server.path(f"runs/{run_id}/cancel"), data={}, allow_redirects=False
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"/zapjobs/runs/{run_id}"
            notice = response.cookies["zapjobs_notice"]
    assert notice["httponly"] and notice["samesite"] == "Strict"
    (logged,) = [entry for entry in logs if entry["event"] == "action_performed"]
    assert (logged["action"], logged["outcome"], logged["target_id"]) == (
        "cancel",
        "conflict",
        run_id,
    )
    for value in (notice.value, notice.value[:-2] + "xx"):
        async with http.get(
            server.path("runs"), headers={"Cookie": f"zapjobs_notice={value}"}
        ) as page:
            assert page.status == 200
            assert page.cookies["zapjobs_notice"].value == ""  # read once
