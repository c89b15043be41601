"""The JSON API under {base}/api: the same shapes as the events, for polling and scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from ...assets import WEB_DIR
from ...db import LOG_PAGE, Database, RunPageKey
from ...db.cursors import CursorError, LogCursor
from ..keys import BRIDGE, DATABASE, SETTINGS, STATS
from ..live.wire import (
    DEAD_LETTER_STATUSES,
    LOG_LEVELS,
    RUN_STATUSES,
    dead_letter_wire,
    enum_value,
    job_wire,
    log_wire,
    run_summary_wire,
    run_wire,
    stats_wire,
    timestamp,
    worker_state,
    worker_wire,
)
from .errors import bad_request, not_found
from .params import one, parse_cursor, parse_limit, parse_uuid
from .times import utc_now

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "RunFilter",
    "chart_minutes",
    "current_stats",
    "list_dead_letter_rows",
    "list_run_rows",
    "page_cursor",
    "parse_enum",
    "parse_page_key",
    "parse_run_filter",
    "setup_api",
    "workers_wire",
]

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_LOG_PAGE = 5000
OPENAPI_FILE = WEB_DIR / "static" / "openapi.json"


# -- query parsing shared with the pages ------------------------------------------------


def parse_enum(query: MultiMapping[str], parameter: str, names: tuple[str, ...]) -> int | None:
    """An enum filter (`status`, `level`) as its integer; a name (any case) or a number;
    400 naming the parameter otherwise."""
    text = one(query, parameter)
    if text is None or text == "":
        return None
    value = enum_value(names, text)
    if value is None:
        bad_request(f"{parameter}: {text[:64]!r} is not one of {', '.join(names)}")
    return value


def parse_page_key(query: MultiMapping[str]) -> tuple[datetime, str] | None:
    """The `before` keyset cursor (`<micros>.<uuid>`, as the API hands out in `next`)."""
    text = one(query, "before")
    if text is None or text == "":
        return None
    try:
        key = LogCursor.parse(text)
    except CursorError as error:
        bad_request(f"before: {text[:64]!r} is not a page cursor ({error})")
    return key.timestamp, key.log_id


def page_cursor(stamp: datetime, row_id: str) -> str:
    """The wire form of a keyset position: the same `<micros>.<uuid>` as a log cursor."""
    return str(LogCursor(stamp, row_id))


class RunFilter:
    """The filters of the run list: status, job type, page key and page size."""

    __slots__ = ("before", "job_type", "limit", "status")

    def __init__(
        self, status: int | None, job_type: str | None, before: RunPageKey | None, limit: int
    ) -> None:
        self.status = status
        self.job_type = job_type
        self.before = before
        self.limit = limit


def parse_run_filter(query: MultiMapping[str], default_limit: int = DEFAULT_PAGE) -> RunFilter:
    status = parse_enum(query, "status", RUN_STATUSES)
    job_type = one(query, "job_type")
    if job_type is not None and not job_type.strip():
        job_type = None
    if job_type is not None and "\x00" in job_type:
        bad_request("job_type: must not contain NUL characters")
    key = parse_page_key(query)
    limit = parse_limit(query, default_limit, MAX_PAGE)
    before = RunPageKey(key[0], key[1]) if key else None
    return RunFilter(status, job_type, before, limit)


async def list_run_rows(
    database: Database, runs: RunFilter
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of runs (newest first) and the cursor of the next page, if there is one."""
    rows = await database.list_runs(
        status=runs.status, job_type=runs.job_type, before=runs.before, limit=runs.limit + 1
    )
    next_cursor = None
    if len(rows) > runs.limit:
        rows = rows[: runs.limit]
        last = rows[-1]
        next_cursor = page_cursor(last["created_at"], str(last["id"]))
    return rows, next_cursor


async def list_dead_letter_rows(
    database: Database, query: MultiMapping[str]
) -> tuple[int | None, list[dict[str, Any]], str | None]:
    """The status filter, one page of dead-letter entries (newest first), the next cursor."""
    status = parse_enum(query, "status", DEAD_LETTER_STATUSES)
    before = parse_page_key(query)
    limit = parse_limit(query, DEFAULT_PAGE, MAX_PAGE)
    rows = await database.list_dead_letter(status=status, before=before, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = page_cursor(rows[-1]["moved_at"], str(rows[-1]["id"]))
    return status, rows, next_cursor


async def current_stats(app: web.Application) -> dict[str, Any]:
    """The coalescer's latest stats while the bridge keeps them fresh; a query otherwise."""
    stats = app[STATS]
    if stats.latest is not None and app[BRIDGE].listening.is_set():
        return stats.latest
    return stats_wire(await app[DATABASE].stats(app[SETTINGS].stats_exact_limit))


def workers_wire(rows: list[dict[str, Any]], stale_after: float) -> list[dict[str, Any]]:
    return [worker_wire(row, worker_state(row, stale_after)) for row in rows]


def chart_minutes(rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Sixty one-minute buckets ending with the current minute, zeros included."""
    current = now.replace(second=0, microsecond=0)
    counts: Mapping[datetime, dict[str, Any]] = {row["minute"]: row for row in rows}
    out = []
    for back in range(59, -1, -1):
        minute = current - timedelta(minutes=back)
        row = counts.get(minute)
        out.append(
            {
                "minute": timestamp(minute),
                "completed": int(row["completed"]) if row else 0,
                "failed": int(row["failed"]) if row else 0,
            }
        )
    return out


# -- handlers -------------------------------------------------------------------------


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(await current_stats(request.app))


async def get_runs(request: web.Request) -> web.Response:
    runs = parse_run_filter(request.query)
    rows, next_cursor = await list_run_rows(request.app[DATABASE], runs)
    return web.json_response({"runs": [run_summary_wire(row) for row in rows], "next": next_cursor})


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
    after_text = one(query, "after")
    after = parse_cursor("after", after_text) if after_text else LogCursor.START
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
    rows = await request.app[DATABASE].all_workers()
    stale_after = request.app[SETTINGS].worker_stale_after
    return web.json_response({"workers": workers_wire(rows, stale_after)})


async def get_jobs(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].list_jobs()
    return web.json_response({"jobs": [job_wire(row) for row in rows]})


async def get_dead_letter(request: web.Request) -> web.Response:
    _, rows, next_cursor = await list_dead_letter_rows(request.app[DATABASE], request.query)
    return web.json_response(
        {"deadLetter": [dead_letter_wire(row) for row in rows], "next": next_cursor}
    )


async def get_runs_per_minute(request: web.Request) -> web.Response:
    rows = await request.app[DATABASE].runs_per_minute()
    return web.json_response({"minutes": chart_minutes(rows, utc_now())})


def setup_api(app: web.Application) -> None:
    """Register the API routes under the configured base path."""
    base = app[SETTINGS].normalized_base_path + "/api"
    spec = json.loads(OPENAPI_FILE.read_text("utf-8"))
    spec["servers"] = [{"url": base}]
    spec_body = json.dumps(spec, indent=2)

    async def get_openapi(request: web.Request) -> web.Response:
        return web.Response(text=spec_body, content_type="application/json")

    app.router.add_get(f"{base}/stats", get_stats, name="api_stats")
    app.router.add_get(f"{base}/runs", get_runs, name="api_runs")
    app.router.add_get(f"{base}/runs/{{id}}", get_run, name="api_run")
    app.router.add_get(f"{base}/runs/{{id}}/logs", get_run_logs, name="api_run_logs")
    app.router.add_get(f"{base}/workers", get_workers, name="api_workers")
    app.router.add_get(f"{base}/jobs", get_jobs, name="api_jobs")
    app.router.add_get(f"{base}/dead-letter", get_dead_letter, name="api_dead_letter")
    app.router.add_get(f"{base}/runs-per-minute", get_runs_per_minute, name="api_runs_per_minute")
    app.router.add_get(f"{base}/openapi.json", get_openapi, name="api_openapi")
