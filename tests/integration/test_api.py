"""The JSON API on a real PostgreSQL: shapes, keyset pagination, errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.support import Writer, sse_connect
from zapjobs_sse.server.live.wire import DEAD_LETTER_STATUSES, LOG_LEVELS, RUN_STATUSES

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as response:
        body = await response.json()
        assert response.status == status, body
        assert response.headers["Content-Type"].startswith("application/json")
        return body


async def test_stats_have_the_stream_shape(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.insert_run("email", status=0)
    await writer.insert_run("email", status=2)
    async with sse_connect(http, server.path("events?topics=stats")) as client:
        events = await client.wait_for(
            lambda es: any(e.name == "StatsUpdated" and e.json()["runningRuns"] == 1 for e in es)
        )
        streamed = [e.json() for e in events if e.name == "StatsUpdated"][-1]
    stats = await get_json(http, server.path("api/stats"))
    assert set(stats) == set(streamed)
    assert stats["pendingRuns"] == 1 and stats["runningRuns"] == 1 and stats["totalRuns"] == 2


async def test_run_list_uses_the_job_run_updated_shape(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=runs")) as client:
        run_id = await writer.insert_run("email", status=2)
        events = await client.wait_named("JobRunUpdated")
        streamed = events[-1].json()
    body = await get_json(http, server.path("api/runs"))
    assert body["next"] is None
    assert body["runs"] == [streamed]
    assert body["runs"][0]["id"] == run_id and body["runs"][0]["status"] == "Running"
    assert ISO_Z.match(body["runs"][0]["createdAt"])


async def test_run_detail_has_every_column_camel_case(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await writer.insert_run("report", status=4)
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = 'boom', stack_trace = 'at x', duration_ms = 5,"
        " completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
        (run_id,),
    )
    run = await get_json(http, server.path(f"api/runs/{run_id}"))
    assert run["id"] == run_id and run["jobTypeId"] == "report" and run["status"] == "Failed"
    assert run["errorMessage"] == "boom" and run["stackTrace"] == "at x"
    assert ISO_Z.match(run["completedAt"])
    expected = {
        "id", "jobTypeId", "status", "triggerType", "triggeredBy", "workerId", "queue",
        "createdAt", "scheduledAt", "startedAt", "completedAt", "durationMs", "progress",
        "total", "progressMessage", "itemsProcessed", "itemsSucceeded", "itemsFailed",
        "attemptNumber", "nextRetryAt", "errorMessage", "stackTrace", "errorType",
        "inputJson", "outputJson", "metadataJson",
    }  # fmt: skip
    assert set(run) == expected


async def test_runs_keyset_pagination_visits_every_run_once_newest_first(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at)"
        " SELECT gen_random_uuid(), CASE WHEN n % 2 = 0 THEN 'even' ELSE 'odd' END, n % 5,"
        " timestamp '2026-01-01' + (n / 3) * interval '1 second' FROM generate_series(1, 23) n"
    )
    seen: list[dict[str, Any]] = []
    url = server.path("api/runs?limit=5")
    pages = 0
    while True:
        body = await get_json(http, url)
        pages += 1
        seen.extend(body["runs"])
        if body["next"] is None:
            break
        url = server.path(f"api/runs?limit=5&before={body['next']}")
    assert pages == 5 and len(seen) == 23
    assert len({run["id"] for run in seen}) == 23
    keys = [(run["createdAt"], run["id"]) for run in seen]
    assert keys == sorted(keys, reverse=True)

    odd = await get_json(http, server.path("api/runs?job_type=odd&limit=100"))
    assert len(odd["runs"]) == 12 and {r["jobTypeId"] for r in odd["runs"]} == {"odd"}
    failed = await get_json(http, server.path("api/runs?status=failed"))
    assert {r["status"] for r in failed["runs"]} == {"Failed"} and len(failed["runs"]) == 4
    by_number = await get_json(http, server.path("api/runs?status=4"))
    assert by_number["runs"] == failed["runs"]


async def test_logs_page_by_cursor_in_order(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await writer.insert_run("email")
    await writer.insert_logs(run_id, [f"line {n}" for n in range(25)])
    await writer.insert_logs(run_id, ["bad"], level=4)
    lines: list[dict[str, Any]] = []
    url = server.path(f"api/runs/{run_id}/logs?limit=10")
    while True:
        body = await get_json(http, url)
        lines.extend(body["logs"])
        if body["complete"]:
            break
        url = server.path(f"api/runs/{run_id}/logs?limit=10&after={body['next']}")
    assert [line["message"] for line in lines] == [f"line {n}" for n in range(25)] + ["bad"]
    assert set(lines[0]) >= {"id", "runId", "level", "message", "category", "timestamp", "cursor"}
    errors = await get_json(http, server.path(f"api/runs/{run_id}/logs?level=error"))
    assert [line["message"] for line in errors["logs"]] == ["bad"]
    rows = await writer.execute(
        "SELECT id::text FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id", (run_id,)
    )
    assert [line["id"] for line in lines] == [row[0] for row in rows]


async def test_workers_jobs_and_dead_letter(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
        " VALUES (gen_random_uuid(), 'w-1', 'host-a', 42, now() AT TIME ZONE 'utc'),"
        " (gen_random_uuid(), 'w-2', 'host-b', 43,"
        "  now() AT TIME ZONE 'utc' - interval '1 hour')"
    )
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES ('email', 'Email')"
    )
    await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, error_message,"
        " attempt_count) VALUES (gen_random_uuid(), gen_random_uuid(), 'email', 'gave up', 3)"
    )
    workers = (await get_json(http, server.path("api/workers")))["workers"]
    assert [(w["workerId"], w["state"]) for w in workers] == [("w-1", "active"), ("w-2", "stale")]
    assert set(workers[0]) >= {
        "workerId", "hostname", "currentJobType", "timestamp", "jobsProcessed", "state",
    }  # fmt: skip
    jobs = (await get_json(http, server.path("api/jobs")))["jobs"]
    assert jobs[0]["jobTypeId"] == "email" and jobs[0]["displayName"] == "Email"
    assert jobs[0]["isEnabled"] is True
    dead = await get_json(http, server.path("api/dead-letter"))
    assert dead["next"] is None
    assert dead["deadLetter"][0]["errorMessage"] == "gave up"
    assert dead["deadLetter"][0]["status"] == "Pending"
    chart = await get_json(http, server.path("api/runs-per-minute"))
    assert chart["range"] == "1h" and chart["bucketSeconds"] == 60
    assert len(chart["buckets"]) in (60, 61)
    assert all(ISO_Z.match(b["start"]) for b in chart["buckets"])


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("api/runs?status=Exploded", "status"),
        ("api/runs?status=1&status=2", "status"),
        ("api/runs?limit=0", "limit"),
        ("api/runs?limit=abc", "limit"),
        ("api/runs?before=yesterday", "before"),
        ("api/runs/not-a-uuid", "id"),
        ("api/runs/not-a-uuid/logs", "id"),
        (f"api/runs/{uuid.uuid4()}/logs?after=nope", "after"),
        (f"api/runs/{uuid.uuid4()}/logs?level=loud", "level"),
        ("api/dead-letter?status=Lost", "status"),
        ("api/runs?job_type=" + "x" * 300, "job_type"),
        ("api/runs?job_type=a%00b", "job_type"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    server: RunningServer, http: aiohttp.ClientSession, path: str, parameter: str
) -> None:
    body = await get_json(http, server.path(path), status=400)
    assert body["error"].startswith(parameter)


async def test_every_enum_filter_takes_names_or_their_numbers_and_refuses_the_rest(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    """One rule for status and level, in the API and on the pages: a documented name (any
    case) or its number; any other number, in range of nothing, is a 400 naming it."""
    run_id = await writer.insert_run("email")
    filters = [
        ("api/runs", "status", RUN_STATUSES),
        (f"api/runs/{run_id}/logs", "level", LOG_LEVELS),
        ("api/dead-letter", "status", DEAD_LETTER_STATUSES),
        ("runs", "status", RUN_STATUSES),
        ("dead-letter", "status", DEAD_LETTER_STATUSES),
    ]
    for path, parameter, names in filters:
        accepted = [*names, names[-1].upper(), *map(str, range(len(names))), ""]
        for value in accepted:
            async with http.get(server.path(path), params={parameter: value}) as response:
                assert response.status == 200, (path, value, await response.text())
        for value in (str(len(names)), "99", "-1", "1.5", "+1", "0x1", "Unknown(99)"):
            async with http.get(server.path(path), params={parameter: value}) as response:
                text = await response.text()
                assert response.status == 400, (path, value, text)
                if path.startswith("api/"):
                    assert (await response.json())["error"].startswith(parameter)
                else:
                    assert response.content_type == "text/html" and parameter in text


async def test_unknown_run_is_404_json(server: RunningServer, http: aiohttp.ClientSession) -> None:
    missing = uuid.uuid4()
    for path in (f"api/runs/{missing}", f"api/runs/{missing}/logs"):
        body = await get_json(http, server.path(path), status=404)
        assert str(missing) in body["error"]


async def test_openapi_describes_every_endpoint(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    spec = await get_json(http, server.path("api/openapi.json"))
    assert spec["openapi"].startswith("3.")
    assert spec["servers"] == [{"url": server.settings.normalized_base_path + "/api"}]
    assert set(spec["paths"]) >= {
        "/stats", "/runs", "/runs/{id}", "/runs/{id}/logs", "/workers", "/jobs", "/dead-letter",
        "/activity", "/jobs/{id}/trigger", "/jobs/{id}/enable", "/jobs/{id}/disable",
        "/runs/{id}/cancel", "/runs/{id}/retry", "/dead-letter/{id}/requeue",
        "/dead-letter/{id}/discard", "/dead-letter/{id}/archive", "/dead-letter/requeue",
        "/dead-letter/discard", "/dead-letter/archive",
    }  # fmt: skip
