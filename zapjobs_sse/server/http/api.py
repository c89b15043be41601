"""The JSON API under {base}/api: the same shapes as the events, for polling and scripts."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ...assets import WEB_DIR
from ...db import LOG_PAGE
from ..keys import DATABASE, SETTINGS
from ..live.wire import (
    LOG_LEVELS,
    activity_wire,
    dead_letter_wire,
    job_wire,
    log_wire,
    run_summary_wire,
    run_wire,
)
from . import readmodel
from .errors import not_found
from .insights import DEFAULT_JOB_RANGE, INSIGHTS, OVERVIEW_RANGE
from .params import (
    DEFAULT_PAGE,
    MAX_LOG_PAGE,
    MAX_PAGE,
    parse_dead_letter_filter,
    parse_enum,
    parse_job_type_id,
    parse_limit,
    parse_log_after,
    parse_page_key,
    parse_range,
    parse_run_filter,
    parse_uuid,
)

__all__ = ["setup_api"]

OPENAPI_FILE = WEB_DIR / "static" / "openapi.json"


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(await readmodel.current_stats(request.app))


async def get_queues(request: web.Request) -> web.Response:
    return web.json_response(await readmodel.current_queues(request.app))


async def get_runs(request: web.Request) -> web.Response:
    runs = parse_run_filter(request.query, request.app[SETTINGS].search_window)
    rows, next_cursor = await readmodel.list_run_rows(request.app[DATABASE], runs)
    body: dict[str, Any] = {"runs": [run_summary_wire(row) for row in rows], "next": next_cursor}
    if runs.search is not None:
        body["searchWindow"] = runs.search.window  # older runs were not searched
    return web.json_response(body)


def run_id_of(request: web.Request) -> str:
    return parse_uuid("id", request.match_info["id"])


async def get_run(request: web.Request) -> web.Response:
    run_id = run_id_of(request)
    row = await request.app[DATABASE].run(run_id)
    if row is None:
        not_found(f"id: no run {run_id}")
    return web.json_response(run_wire(row))


async def get_run_logs(request: web.Request) -> web.Response:
    run_id = run_id_of(request)
    query = request.query
    after_text, after = parse_log_after(query)
    limit = parse_limit(query, LOG_PAGE, MAX_LOG_PAGE)
    level = parse_enum(query, "level", LOG_LEVELS)
    database = request.app[DATABASE]
    if await database.run(run_id) is None:
        not_found(f"id: no run {run_id}")
    rows = await database.logs_after(run_id, after, limit=limit, min_level=level)
    logs = [log_wire(row) for row in rows]
    return web.json_response(
        {
            "logs": logs,
            "next": logs[-1]["cursor"] if logs else (after_text or None),
            "complete": len(logs) < limit,
        }
    )


async def get_workers(request: web.Request) -> web.Response:
    return web.json_response({"workers": await readmodel.current_workers(request.app)})


async def get_jobs(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].list_jobs()
    return web.json_response({"jobs": [job_wire(row) for row in rows]})


async def get_dead_letter(request: web.Request) -> web.Response:
    entries = parse_dead_letter_filter(request.query)
    rows, next_cursor = await readmodel.list_dead_letter_rows(request.app[DATABASE], entries)
    return web.json_response(
        {"deadLetter": [dead_letter_wire(row) for row in rows], "next": next_cursor}
    )


async def get_activity(request: web.Request) -> web.Response:
    before = parse_page_key(request.query)
    limit = parse_limit(request.query, DEFAULT_PAGE, MAX_PAGE)
    rows, next_cursor = await readmodel.list_activity_rows(request.app[DATABASE], before, limit)
    entries = [activity_wire(row) for row in rows]
    return web.json_response({"activity": entries, "next": next_cursor})


async def get_runs_per_minute(request: web.Request) -> web.Response:
    chosen = parse_range(request.query, OVERVIEW_RANGE)
    chart = await request.app[INSIGHTS].get(None, chosen)
    return web.json_response(readmodel.chart_wire(chart))


async def get_job_insights(request: web.Request) -> web.Response:
    job_type = parse_job_type_id(request.match_info["id"])
    chosen = parse_range(request.query, DEFAULT_JOB_RANGE)
    answer = await request.app[INSIGHTS].get(job_type, chosen)
    # Runs in the range prove the job type exists; only an empty answer asks the tables.
    finished = answer["completed"] + answer["failed"] + answer["cancelled"]
    if not finished and not await readmodel.job_type_known(request.app[DATABASE], job_type):
        not_found(f"id: no job type {job_type[:255]!r} (no definition and no runs)")
    return web.json_response(answer)


def setup_api(app: web.Application) -> None:
    """Register the API routes under the configured base path."""
    base = app[SETTINGS].normalized_base_path + "/api"
    spec = json.loads(OPENAPI_FILE.read_text("utf-8"))
    spec["servers"] = [{"url": base}]
    spec_body = json.dumps(spec, indent=2)

    async def get_openapi(request: web.Request) -> web.Response:
        return web.Response(text=spec_body, content_type="application/json")

    app.router.add_get(f"{base}/stats", get_stats, name="api_stats")
    app.router.add_get(f"{base}/queues", get_queues, name="api_queues")
    app.router.add_get(f"{base}/runs", get_runs, name="api_runs")
    app.router.add_get(f"{base}/runs/{{id}}", get_run, name="api_run")
    app.router.add_get(f"{base}/runs/{{id}}/logs", get_run_logs, name="api_run_logs")
    app.router.add_get(f"{base}/workers", get_workers, name="api_workers")
    app.router.add_get(f"{base}/jobs", get_jobs, name="api_jobs")
    app.router.add_get(f"{base}/dead-letter", get_dead_letter, name="api_dead_letter")
    app.router.add_get(f"{base}/runs-per-minute", get_runs_per_minute, name="api_runs_per_minute")
    app.router.add_get(f"{base}/jobs/{{id}}/insights", get_job_insights, name="api_job_insights")
    app.router.add_get(f"{base}/activity", get_activity, name="api_activity")
    app.router.add_get(f"{base}/openapi.json", get_openapi, name="api_openapi")
