"""Job-type insights and the overview chart's ranges, against a direct computation on
known data: exact up to a day, from the hourly rollups (within 5 %) beyond it."""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.conftest import BOTH_FEEDS, RunningServer, make_settings
from tests.support import Writer
from zapjobs_sse.server.run import serve_app

pytestmark = BOTH_FEEDS


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"rollup_interval": 0.2}


# (job type, status, hours before now, duration ms, error type)
Run = tuple[str, int, float, int | None, str | None]


async def insert_finished(writer: Writer, runs: list[Run]) -> None:
    """Finished runs as executors leave them (one INSERT: the feed sees them all)."""
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at, started_at,"
        " completed_at, duration_ms, error_type, error_message)"
        " SELECT gen_random_uuid(), r.job_type, r.status,"
        "  now() AT TIME ZONE 'utc' - r.hours * interval '1 hour' - interval '1 minute',"
        "  now() AT TIME ZONE 'utc' - r.hours * interval '1 hour' - interval '1 minute',"
        "  now() AT TIME ZONE 'utc' - r.hours * interval '1 hour', r.duration, r.error_type,"
        "  CASE WHEN r.error_type IS NOT NULL THEN 'boom: ' || r.error_type END"
        " FROM unnest(%s::text[], %s::int[], %s::float8[], %s::int[], %s::text[])"
        "  AS r(job_type, status, hours, duration, error_type)",
        tuple(map(list, zip(*runs, strict=True))),
    )


def mixed_runs(job_type: str, count: int, max_hours: float, seed: int) -> list[Run]:
    rng = random.Random(seed)
    runs: list[Run] = []
    for _ in range(count):
        status = rng.choices((3, 4, 5), weights=(80, 15, 5))[0]
        duration = None if status == 5 else int(rng.lognormvariate(6, 1.2))
        error = rng.choice(("Timeout", "HttpError", "KeyError")) if status == 4 else None
        runs.append((job_type, status, rng.uniform(0.01, max_hours), duration, error))
    return runs


def naive(iso: str) -> datetime:
    return datetime.fromisoformat(iso.removesuffix("Z"))


async def direct(writer: Writer, job_type: str | None, answer: dict[str, Any]) -> dict[str, Any]:
    """The figures computed straight from zapjobs.runs for the answer's [from, to)."""
    rows = await writer.execute(
        "SELECT count(*) FILTER (WHERE status = 3), count(*) FILTER (WHERE status = 4),"
        " count(*) FILTER (WHERE status = 5),"
        " percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)"
        "  FILTER (WHERE status IN (3, 4))"
        " FROM zapjobs.runs WHERE completed_at >= %s AND completed_at < %s"
        " AND (%s::text IS NULL OR job_type_id = %s::text)",
        (naive(answer["from"]), naive(answer["to"]), job_type, job_type),
    )
    completed, failed, cancelled, percentiles = rows[0]
    return {
        "completed": completed,
        "failed": failed,
        "cancelled": cancelled,
        "percentiles": percentiles or [None, None, None],
    }


async def counts_match(
    http: aiohttp.ClientSession, writer: Writer, server: RunningServer, range_: str
) -> None:
    answer = await insights(http, server, "report", range_)
    expected = await direct(writer, "report", answer)
    for key in ("completed", "failed", "cancelled"):
        assert answer[key] == expected[key], key


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def insights(
    http: aiohttp.ClientSession, server: RunningServer, job_type: str, range_: str
) -> dict[str, Any]:
    answer: dict[str, Any] = await get_json(
        http, server.path(f"api/jobs/{job_type}/insights?range={range_}")
    )
    return answer


async def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("range_", ["1h", "24h"])
async def test_insights_up_to_a_day_are_exactly_what_the_runs_table_says(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer, range_: str
) -> None:
    await insert_finished(writer, mixed_runs("report", 400, 30, seed=1))
    await insert_finished(writer, mixed_runs("other", 100, 30, seed=2))

    async def check() -> None:
        answer = await insights(http, server, "report", range_)
        expected = await direct(writer, "report", answer)
        assert answer["estimated"] is False
        assert answer["completed"] == expected["completed"] > 0
        assert answer["failed"] == expected["failed"]
        assert answer["cancelled"] == expected["cancelled"]
        assert answer["failureRate"] == pytest.approx(
            expected["failed"] / (expected["completed"] + expected["failed"]), abs=1e-4
        )
        for name, value in zip(("p50", "p95", "p99"), expected["percentiles"], strict=True):
            assert answer["durationMs"][name] == pytest.approx(value, abs=0.1)
        for key in ("completed", "failed", "cancelled"):
            assert sum(b[key] for b in answer["buckets"]) == answer[key]

    await eventually(check)
    answer = await insights(http, server, "report", range_)
    span = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}[range_]
    assert naive(answer["to"]) - naive(answer["from"]) == span
    assert len(answer["buckets"]) in {"1h": (60, 61), "24h": (24, 25)}[range_]


async def test_the_most_frequent_errors_each_link_to_their_latest_run(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    runs: list[Run] = [("report", 4, 2 + n / 10, 100, "Timeout") for n in range(5)]
    runs += [("report", 4, 3 + n / 10, 100, "HttpError") for n in range(2)]
    runs += [("report", 4, 30, 100, "OldError")]  # outside the day
    runs += [("report", 4, 1, 100, None), ("report", 3, 1, 50, None)]
    await insert_finished(writer, runs)
    latest = await writer.execute(
        "SELECT id::text FROM zapjobs.runs WHERE error_type = 'Timeout'"
        " ORDER BY completed_at DESC LIMIT 1"
    )
    answer = await insights(http, server, "report", "24h")
    errors = answer["topErrors"]
    assert [(e["errorType"], e["count"]) for e in errors] == [
        ("Timeout", 5),
        ("HttpError", 2),
        (None, 1),
    ]
    assert errors[0]["runId"] == latest[0][0]
    assert errors[0]["message"] == "boom: Timeout"
    assert answer["failed"] == 8 and answer["completed"] == 1


@pytest.mark.parametrize("range_", ["7d", "30d"])
async def test_long_ranges_count_exactly_and_estimate_durations_within_5_percent(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer, range_: str
) -> None:
    # Old hours come from the rollups the server keeps from the changes it reads.
    await insert_finished(writer, mixed_runs("report", 600, 24 * 40, seed=3))
    await insert_finished(writer, mixed_runs("other", 200, 24 * 40, seed=4))

    async def check() -> None:
        answer = await insights(http, server, "report", range_)
        expected = await direct(writer, "report", answer)
        assert answer["estimated"] is True
        for key in ("completed", "failed", "cancelled"):
            assert answer[key] == expected[key], key
            assert sum(b[key] for b in answer["buckets"]) == expected[key]
        for name, value in zip(("p50", "p95", "p99"), expected["percentiles"], strict=True):
            assert answer["durationMs"][name] == pytest.approx(value, rel=0.05), name

    await eventually(check)


async def test_rollups_are_rebuilt_from_the_tables_at_start_and_replicas_never_double_count(
    database_dsn: str, feed: str, http: aiohttp.ClientSession, writer: Writer
) -> None:
    # Written while no server watched: no change was seen, the rebuild must find them.
    await writer.execute("SET session_replication_role = replica")
    await insert_finished(writer, mixed_runs("report", 300, 24 * 20, seed=5))
    await writer.execute("SET session_replication_role = DEFAULT")
    settings = make_settings(database_dsn, feed=feed, rollup_interval=0.2)
    async with serve_app(settings) as first, serve_app(settings) as second:
        # Both replicas rebuilt the same hours and see the changes below.
        await insert_finished(writer, mixed_runs("report", 100, 24 * 6, seed=6))
        for url in (first, second):
            replica = RunningServer(url, settings)
            await eventually(functools.partial(counts_match, http, writer, replica, "30d"))
    rows = await writer.execute(
        "SELECT sum(completed + failed + cancelled) FROM zapjobs.sse_run_hours"
        " WHERE job_type_id = 'report'"
    )
    finished = await writer.execute(
        "SELECT count(*) FROM zapjobs.runs WHERE job_type_id = 'report'"
        " AND completed_at >= date_trunc('hour', now() AT TIME ZONE 'utc') - interval '31 days'"
    )
    assert rows[0][0] == finished[0][0]


async def test_a_job_type_without_runs_answers_zeros_and_an_unknown_one_404(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES ('idle', 'Idle')"
    )
    for range_ in ("1h", "24h", "7d", "30d"):
        answer = await insights(http, server, "idle", range_)
        assert (answer["completed"], answer["failed"], answer["cancelled"]) == (0, 0, 0)
        assert answer["failureRate"] is None
        assert answer["durationMs"] == {"p50": None, "p95": None, "p99": None}
        assert answer["topErrors"] == []
        assert answer["buckets"] and all(b["completed"] == 0 for b in answer["buckets"])
    missing = await get_json(http, server.path("api/jobs/nope/insights"), status=404)
    assert "nope" in missing["error"]
    nul = await get_json(http, server.path("api/jobs/a%00b/insights"), status=400)
    assert nul["error"].startswith("id:")
    bad = await get_json(http, server.path("api/jobs/idle/insights?range=2w"), status=400)
    assert bad["error"].startswith("range:")


async def test_the_overview_chart_answers_each_range_for_all_job_types(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await insert_finished(writer, mixed_runs("report", 200, 24 * 8, seed=7))
    await insert_finished(writer, mixed_runs("other", 200, 24 * 8, seed=8))

    async def check() -> None:
        for range_, width in (("1h", 60), ("24h", 3600), ("7d", 21600), ("30d", 86400)):
            chart = await get_json(http, server.path(f"api/runs-per-minute?range={range_}"))
            assert chart["range"] == range_ and chart["bucketSeconds"] == width
            expected = await direct(writer, None, chart)
            for key in ("completed", "failed", "cancelled"):
                assert sum(b[key] for b in chart["buckets"]) == expected[key], (range_, key)

    await eventually(check)
    default = await get_json(http, server.path("api/runs-per-minute"))
    assert default["range"] == "1h"


async def test_many_viewers_asking_at_once_cost_one_computation(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await insert_finished(writer, mixed_runs("report", 50, 20, seed=9))
    before = await insights_computed(http, server)
    answers = await asyncio.gather(*(insights(http, server, "report", "24h") for _ in range(40)))
    assert len({a["completed"] for a in answers}) == 1
    assert await insights_computed(http, server) - before <= 2


async def insights_computed(http: aiohttp.ClientSession, server: RunningServer) -> float:
    async with http.get(server.path("metrics")) as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("zapjobs_sse_insights_computed_total "):
            return float(line.split()[1])
    raise AssertionError("no zapjobs_sse_insights_computed_total in /metrics")


async def test_an_insight_answer_moves_when_a_run_of_its_job_type_finishes(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES ('report', 'R')"
    )
    first = await insights(http, server, "report", "1h")
    run_id = str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, started_at) VALUES"
        " (%s, 'report', 2, now() AT TIME ZONE 'utc')",
        (run_id,),
    )
    await writer.execute(
        "UPDATE zapjobs.runs SET status = 3, completed_at = now() AT TIME ZONE 'utc',"
        " duration_ms = 1234 WHERE id = %s",
        (run_id,),
    )

    async def check() -> None:
        answer = await insights(http, server, "report", "1h")
        assert answer["completed"] == first["completed"] + 1
        assert answer["durationMs"]["p50"] == 1234

    await eventually(check, timeout=5)


async def test_the_pages_answer_bad_input_and_unknown_job_types_as_pages(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await insert_finished(writer, [("report", 4, 0.5, 10, "<b>Boom</b>")])
    cases = [
        ("jobs/nope", 404, "nope"),
        ("jobs/report?range=1y", 400, "range"),
        ("jobs/report?part=everything", 400, "part"),
        ("jobs/a%00b", 400, "NUL"),
        ("jobs/" + "x" * 256, 404, "255"),
        ("?range=forever", 400, "range"),
    ]
    for path, status, named in cases:
        async with http.get(server.path(path)) as response:
            text = await response.text()
            assert response.status == status, path
            assert response.content_type == "text/html" and named in text, path
    async with http.get(server.path("jobs/report?part=insights&range=1h")) as response:
        fragment = await response.text()
    assert fragment.lstrip().startswith('<div id="insights"') and "<html" not in fragment
    assert "&lt;b&gt;Boom&lt;/b&gt;" in fragment and "<b>Boom</b>" not in fragment
    async with http.get(server.path("?part=chart&range=7d")) as response:
        chart = await response.text()
    assert chart.lstrip().startswith('<div id="overview-chart"') and "last 7 days" in chart
