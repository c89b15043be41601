"""The server-rendered pages: complete without JavaScript; web/static/*.js keep them live.

The formatters here are the Jinja filters; web/static/format.js formats the same values
the same way (tests/unit/test_dashboard_format.py runs both).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ...assets import WEB_DIR
from ...db import LOG_PAGE, DatabaseError, DatabaseUnavailable
from ..keys import BROKER, DATABASE, SETTINGS
from ..live.wire import (
    DEAD_LETTER_STATUSES,
    LOG_LEVELS,
    RUN_STATUSES,
    activity_wire,
    dead_letter_wire,
    job_wire,
    log_wire,
    run_summary_wire,
    run_wire,
    timestamp,
)
from . import readmodel
from .charts import duration_chart, format_ms, outcome_chart
from .errors import bad_request, not_found
from .insights import DEFAULT_JOB_RANGE, INSIGHTS, OVERVIEW_RANGE, RANGES
from .layout import render_page
from .params import (
    DEFAULT_PAGE,
    MAX_PAGE,
    RunFilter,
    one,
    parse_dead_letter_filter,
    parse_enum,
    parse_job_type_id,
    parse_limit,
    parse_log_after,
    parse_page_key,
    parse_range,
    parse_run_filter,
    parse_run_id_prefix,
    parse_uuid,
)
from .times import format_time, utc_now

__all__ = [
    "error_heading",
    "error_page",
    "format_count",
    "format_duration",
    "format_elapsed",
    "format_log_time",
    "format_percent",
    "format_relative",
    "progress_view",
    "row_error",
    "running_for",
    "running_summary",
    "setup_pages",
]

log = structlog.get_logger("zapjobs_sse.server.http.pages")

RECENT_RUNS = 15
MAX_RUNNING = 500  # running runs read for the workers' "Running now" (the API's page limit)
Page = Callable[[web.Request], Awaitable[dict[str, Any]]]

# The overview's stat cards: element id suffix, StatsUpdated field, label.
STAT_CARDS = (
    ("pending", "pendingRuns", "Pending"),
    ("running", "runningRuns", "Running"),
    ("completed", "completedToday", "Completed today"),
    ("failed", "failedToday", "Failed today"),
    ("active-workers", "activeWorkers", "Active workers"),
    ("dead-letter", "deadLetterCount", "Dead letter"),
    ("total-jobs", "totalJobs", "Job types"),
    ("total-runs", "totalRuns", "Runs"),
    ("total-log-entries", "totalLogEntries", "Log lines"),
)


def format_duration(ms: int | None) -> str:
    """A duration for people."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60000:
        tenths = ms // 100
        return f"{tenths // 10}.{tenths % 10} s"
    seconds = ms // 1000
    return f"{seconds // 60} min {seconds % 60} s"


def format_elapsed(ms: int | None) -> str:
    """How long something has lasted so far (a running run, the wait of a queue's oldest
    pending run): whole seconds, then minutes, hours and days."""
    if ms is None:
        return ""
    seconds = max(0, ms // 1000)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def running_for(run: dict[str, Any], now: datetime) -> int | None:
    """Milliseconds since a running run started; None once it has a duration (or no start)."""
    started = run.get("startedAt")
    if run.get("status") != "Running" or run.get("durationMs") is not None or not started:
        return None
    since = datetime.fromisoformat(str(started).removesuffix("Z"))
    return int((now - since).total_seconds() * 1000)


def format_count(value: int | None) -> str:
    return "" if value is None else f"{value:,}".replace(",", "\u202f")


def format_percent(rate: float | None) -> str:
    """A rate (0 to 1) for people: 12.5 %, or a dash when there is nothing to divide."""
    if rate is None:
        return "\u2013"
    return f"{rate * 100:.1f} %"


def _wire_time(value: str) -> datetime:
    return datetime.fromisoformat(value.removesuffix("Z"))


def format_log_time(value: str | None) -> str:
    """A log line's time of day, to the millisecond: "17:59:31.123"."""
    return value[11:23] if value else ""


def format_relative(value: str | None, now: datetime) -> str:
    """How far a wire timestamp is from now: "3 min ago", "in 2 h", "just now"."""
    if not value:
        return ""
    milliseconds = (now - _wire_time(value)) // timedelta(milliseconds=1)
    seconds = int(milliseconds / 1000)
    away = abs(seconds)
    if away < 10:
        return "in a moment" if seconds < 0 else "just now"
    if away < 60:
        text = f"{away} s"
    elif away < 3600:
        text = f"{away // 60} min"
    elif away < 86400:
        text = f"{away // 3600} h"
    else:
        text = f"{away // 86400} d"
    return f"in {text}" if seconds < 0 else f"{text} ago"


def progress_view(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The progress bar of a run: None when there is nothing to show (a finished run that
    never reported progress); value None is an indeterminate bar (running, no progress)."""
    progress, total = run.get("progress") or 0, run.get("total") or 0
    if total > 0:
        return {"max": total, "value": min(progress, total), "text": f"{progress}/{total}"}
    if progress > 0:
        return {"max": 100, "value": min(progress, 100), "text": f"{progress}%"}
    if run.get("status") == "Running":
        return {"max": 100, "value": None, "text": ""}
    return None


def row_error(run: Mapping[str, Any]) -> str:
    """The error a run row shows: that of the attempt its status is about (a retry that is
    running again has none yet; the run page keeps the previous attempt's)."""
    if run.get("status") in ("Failed", "AwaitingRetry"):
        return str(run.get("errorMessage") or "")
    return ""


def error_heading(run: Mapping[str, Any]) -> str:
    """The heading of the run page's error panel: whose error it is."""
    attempt = run.get("attemptNumber") or 1
    if run.get("status") == "Failed":
        return f"Attempt {attempt} failed" if attempt > 1 else "Error"
    return f"Attempt {attempt - 1} failed" if attempt > 1 else "Error"


def running_summary(job_types: list[str]) -> str:
    """What a worker runs now: "sync-inventory", or "6 runs: resize-images \u00d73, ..."
    (most frequent first; format.js runningSummary says the same)."""
    if not job_types:
        return ""
    if len(job_types) == 1:
        return job_types[0]
    counts = Counter(job_types)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{name} \u00d7{n}" if n > 1 else name for name, n in ordered]
    return f"{len(job_types)} runs: " + ", ".join(parts)


def _error_message(error: web.HTTPException) -> str:
    try:
        return str(json.loads(error.text or "")["error"])
    except (ValueError, KeyError, TypeError):
        return error.reason


def page(template: str, name: str) -> Callable[[Page], Handler]:
    """Render a page; bad input and unknown ids become readable 400/404 pages, never a 500."""

    def wrap(handler: Page) -> Handler:
        async def render(request: web.Request) -> web.StreamResponse:
            # Taken before the page reads anything: its stream replays every event after
            # it, so nothing that changes between this read and the stream's start is lost.
            broker = request.app[BROKER]
            live_from = broker.event_id(broker.seq)
            try:
                context = await handler(request)
            except (web.HTTPBadRequest, web.HTTPNotFound) as error:
                return error_page(request, error.status, _error_message(error))
            except DatabaseError as error:
                return _database_error_page(request, error)
            context.setdefault("page", name)
            context["live_from"] = live_from
            return render_page(context.pop("template", template), request, context)

        return render

    return wrap


def _query(**values: str | None) -> str:
    """A query string of the non-empty values."""
    return urlencode({key: value for key, value in values.items() if value})


def _enum_text(names: tuple[str, ...], value: int | None) -> str:
    """The filter as the form shows it: a name, a number ZapJobs does not name, or ''."""
    if value is None:
        return ""
    return names[value] if value < len(names) else str(value)


def _status_list(
    statuses: tuple[str, ...],
    status: int | None,
    next_cursor: str | None,
    first_page: bool,
    **filters: str | None,
) -> dict[str, Any]:
    """What a list filtered by status and paged by key shows around its rows: the filter and
    its choices, and the links to its newest page and to its next one (same filters)."""
    status_name = _enum_text(statuses, status)
    return {
        "status": status_name,
        "statuses": statuses,
        "first_page": first_page,
        "next": next_cursor,
        "newest_query": _query(status=status_name, **filters),
        "next_query": _query(status=status_name, **filters, before=next_cursor),
    }


def error_page(request: web.Request, status: int, message: str, **extra: Any) -> web.Response:
    """web/templates/error.html; `extra` adds to its context (go_to_run_id, matches)."""
    titles = {
        300: "Several runs",
        400: "Bad request",
        404: "Not found",
        405: "Method not allowed",
        503: "Service unavailable",
    }
    context = {"status": status, "title": titles.get(status, "Error"), "message": message}
    response = render_page("error.html", request, context | extra, status=status)
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


def _database_error_page(request: web.Request, error: DatabaseError) -> web.Response:
    if isinstance(error, DatabaseUnavailable):
        log.warning("page_database_unavailable", path=request.path, error=str(error))
        return error_page(request, 503, "The database cannot be reached right now.")
    log.error("page_database_error", path=request.path, error=str(error))
    return error_page(request, 503, "The database could not answer this request.")


async def _workers_with_runs(app: web.Application) -> list[dict[str, Any]]:
    """The workers, each with the runs it is running now (the runs table knows them all;
    a heartbeat names one current job type, possibly out of date)."""
    running = await app[DATABASE].list_runs(
        status=RUN_STATUSES.index("Running"), job_type=None, before=None, limit=MAX_RUNNING
    )
    by_worker: dict[str, list[dict[str, str]]] = {}
    for row in reversed(running):
        if row["worker_id"]:
            item = {"id": str(row["id"]), "jobTypeId": row["job_type_id"]}
            by_worker.setdefault(row["worker_id"], []).append(item)
    workers = await readmodel.current_workers(app)
    return [worker | {"running": by_worker.get(worker["workerId"], [])} for worker in workers]


# -- pages ----------------------------------------------------------------------------


def _part(request: web.Request, name: str) -> bool:
    """Whether the browser asks for one part of the page (`?part=`), to refresh it."""
    part = one(request.query, "part")
    if part is not None and part != name:
        bad_request(f"part: {part[:64]!r} is not {name!r}")
    return part is not None


async def _insights_view(
    request: web.Request, job_type: str | None, default: str
) -> dict[str, Any]:
    """The insights of the range the URL names, with their charts, for a template."""
    chosen = parse_range(request.query, default)
    insights = await request.app[INSIGHTS].get(job_type, chosen)
    return {
        "insights": insights,
        "outcomes": outcome_chart(insights),
        "durations": duration_chart(insights),
        "range": chosen.name,
        "range_label": chosen.label,
        "ranges": [(r.name, r.label) for r in RANGES.values()],
    }


@page("overview.html", "overview")
async def overview(request: web.Request) -> dict[str, Any]:
    chart = await _insights_view(request, None, OVERVIEW_RANGE)
    if _part(request, "chart"):
        return chart | {"template": "overview_chart.html"}
    database = request.app[DATABASE]
    stats = await readmodel.current_stats(request.app)
    runs, _ = await readmodel.list_run_rows(database, RunFilter(None, None, None, RECENT_RUNS))
    workers = await _workers_with_runs(request.app)
    queues = await readmodel.current_queues(request.app)
    return chart | {
        "title": "Overview",
        "stats": stats,
        "queues": queues,
        "cards": STAT_CARDS,
        "runs": [run_summary_wire(row) for row in runs],
        "workers": workers,
        "page_size": RECENT_RUNS,
    }


@page("runs.html", "runs")
async def runs_page(request: web.Request) -> dict[str, Any]:
    runs = parse_run_filter(request.query, request.app[SETTINGS].search_window)
    rows, next_cursor = await readmodel.list_run_rows(request.app[DATABASE], runs)
    first_page = runs.before is None
    search = runs.search
    filters = {"job_type": runs.job_type, "queue": runs.queue, "q": search.text if search else None}
    return {
        "title": "Runs",
        "runs": [run_summary_wire(row) for row in rows],
        **_status_list(RUN_STATUSES, runs.status, next_cursor, first_page, **filters),
        "job_type": runs.job_type or "",
        "queue": runs.queue or "",
        "q": search.text if search else "",
        "search_window": request.app[SETTINGS].search_window,
        "ids_everywhere": search.id_prefix if search and search.ids_everywhere else "",
        "page_size": runs.limit,
    }


async def go_to_run(request: web.Request) -> web.StreamResponse:
    """The header's "go to run" box: a run id, or its first 8 hex digits or more (the
    short ids of the tables), to the run's page. A prefix of no run (404) or of several
    (300, with links to two of them) says so on a page whose box holds what was typed."""
    base = request.app[SETTINGS].normalized_base_path
    text = ""
    try:
        text = (one(request.query, "id") or "").strip()
        prefix = parse_run_id_prefix("id", text)
        if len(prefix) == 32:  # a whole id: the run page says if there is no such run
            raise web.HTTPSeeOther(f"{base}/runs/{uuid.UUID(prefix)}")
        ids = await request.app[DATABASE].run_ids_starting_with(prefix)
    except web.HTTPBadRequest as error:
        return error_page(request, 400, _error_message(error), go_to_run_id=text)
    except DatabaseError as error:
        return _database_error_page(request, error)
    if len(ids) == 1:
        raise web.HTTPSeeOther(f"{base}/runs/{ids[0]}")
    if not ids:
        message = f"No run id starts with {prefix}."
        return error_page(request, 404, message, go_to_run_id=text)
    message = f"More than one run id starts with {prefix}: type more of it, or choose one."
    return error_page(request, 300, message, go_to_run_id=text, matches=ids)


@page("run.html", "run")
async def run_page(request: web.Request) -> dict[str, Any]:
    run_id = parse_uuid("id", request.match_info["id"])
    after_text, after = parse_log_after(request.query)
    database = request.app[DATABASE]
    row = await database.run(run_id)
    if row is None:
        not_found(f"No run with id {run_id}.")
    min_level = min(parse_enum(request.query, "level", LOG_LEVELS) or 0, len(LOG_LEVELS) - 1)
    lines = await database.logs_after(run_id, after, limit=LOG_PAGE)
    logs = [log_wire(line) for line in lines]
    run = run_wire(row)
    now = utc_now()
    hidden_levels = LOG_LEVELS[:min_level]
    return {
        "title": f"Run {run_id}",
        "run": run,
        "running_for": running_for(run, now),
        "server_now": timestamp(now),
        # The stack trace has its place in the error panel.
        "fields": [(key, value) for key, value in run.items() if key != "stackTrace"],
        "logs": logs,
        "logs_after": logs[-1]["cursor"] if logs else str(after),
        "more_logs": len(logs) == LOG_PAGE,
        "started_after": after_text or "",
        "levels": LOG_LEVELS,
        "min_level": min_level,
        "level_query": _query(level=LOG_LEVELS[min_level] if min_level else None),
        "shown_lines": sum(1 for line in logs if line["level"] not in hidden_levels),
    }


@page("jobs.html", "jobs")
async def jobs_page(request: web.Request) -> dict[str, Any]:
    rows = await request.app[DATABASE].list_jobs()
    return {"title": "Job definitions", "jobs": [job_wire(row) for row in rows]}


@page("job.html", "job")
async def job_page(request: web.Request) -> dict[str, Any]:
    """One job type: its definition, the insights of a range, its live recent runs."""
    job_type = parse_job_type_id(request.match_info["id"])
    view = await _insights_view(request, job_type, DEFAULT_JOB_RANGE)
    if _part(request, "insights"):
        return view | {"template": "job_insights.html"}
    database = request.app[DATABASE]
    definition = await database.definition(job_type)
    if definition is None and not await database.job_type_has_runs(job_type):
        not_found(f"No job type {job_type[:255]!r}: it has no definition and no runs.")
    runs, _ = await readmodel.list_run_rows(database, RunFilter(None, job_type, None, RECENT_RUNS))
    return view | {
        "title": definition["display_name"] if definition else job_type,
        "job_type": job_type,
        "job": job_wire(definition) if definition else None,
        "runs": [run_summary_wire(row) for row in runs],
        "page_size": RECENT_RUNS,
    }


@page("queues.html", "queues")
async def queues_page(request: web.Request) -> dict[str, Any]:
    return {"title": "Queues", "queues": await readmodel.current_queues(request.app)}


@page("workers.html", "workers")
async def workers_page(request: web.Request) -> dict[str, Any]:
    return {"title": "Workers", "workers": await _workers_with_runs(request.app)}


@page("dead_letter.html", "dead-letter")
async def dead_letter_page(request: web.Request) -> dict[str, Any]:
    entries = parse_dead_letter_filter(request.query)
    database = request.app[DATABASE]
    rows, next_cursor = await readmodel.list_dead_letter_rows(database, entries)
    first_page = "before" not in request.query
    # What "... all N matching" would change: only Pending entries change.
    pending = DEAD_LETTER_STATUSES.index("Pending")
    matching = 0
    if entries.status in (None, pending):
        matching = await database.count_pending_dead_letter(entries.job_type)
    return {
        "title": "Dead letter",
        "entries": [dead_letter_wire(row) for row in rows],
        "job_type": entries.job_type or "",
        "bulk_count": matching,
        **_status_list(
            DEAD_LETTER_STATUSES,
            entries.status,
            next_cursor,
            first_page,
            job_type=entries.job_type,
        ),
    }


@page("activity.html", "activity")
async def activity_page(request: web.Request) -> dict[str, Any]:
    before = parse_page_key(request.query)
    limit = parse_limit(request.query, DEFAULT_PAGE, MAX_PAGE)
    rows, next_cursor = await readmodel.list_activity_rows(request.app[DATABASE], before, limit)
    return {
        "title": "Activity",
        "entries": [activity_wire(row) for row in rows],
        "first_page": before is None,
        "next_query": _query(before=next_cursor),
        "next": next_cursor,
    }


async def _to_overview(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(request.app[SETTINGS].normalized_base_path + "/")


def _lower(value: object) -> str:
    return str(value).lower()


def _ago(value: str | None) -> str:
    return format_relative(value, utc_now())


def _age(value: str | None) -> str:
    """The time elapsed since a wire timestamp: "12 min 5 s" (times.js keeps it ticking)."""
    if not value:
        return ""
    return format_elapsed((utc_now() - _wire_time(value)) // timedelta(milliseconds=1))


FILTERS: dict[str, Callable[..., Any]] = {
    "ago": _ago,
    "age": _age,
    "error_heading": error_heading,
    "log_time": format_log_time,
    "progress_view": progress_view,
    "row_error": row_error,
    "running_summary": running_summary,
    "when": format_time,
    "duration": format_duration,
    "elapsed": format_elapsed,
    "count": format_count,
    "ms": format_ms,
    "percent": format_percent,
    "lower": _lower,
}


def setup_pages(app: web.Application) -> None:
    """Templates, static files and the page routes under the configured base path."""
    base = app[SETTINGS].normalized_base_path
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters=FILTERS,
    )
    app.router.add_static(f"{base}/static", WEB_DIR / "static", name="static")
    app.router.add_get(f"{base}/", overview, name="page_overview")
    if base:
        app.router.add_get(base, _to_overview, name="page_base")
    app.router.add_get(f"{base}/runs", runs_page, name="page_runs")
    app.router.add_get(f"{base}/runs/go", go_to_run, name="page_go_to_run")
    app.router.add_get(f"{base}/runs/{{id}}", run_page, name="page_run")
    app.router.add_get(f"{base}/jobs", jobs_page, name="page_jobs")
    app.router.add_get(f"{base}/jobs/{{id}}", job_page, name="page_job")
    app.router.add_get(f"{base}/queues", queues_page, name="page_queues")
    app.router.add_get(f"{base}/workers", workers_page, name="page_workers")
    app.router.add_get(f"{base}/dead-letter", dead_letter_page, name="page_dead_letter")
    app.router.add_get(f"{base}/activity", activity_page, name="page_activity")
