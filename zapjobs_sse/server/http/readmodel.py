"""What the JSON API and the pages both read: pages of runs and dead letter, stats,
queues, workers and the overview chart, in the wire shapes of the stream."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from ...db import Database, Row
from ...db.cursors import LogCursor
from ..keys import BRIDGE, DATABASE, SETTINGS, STATS
from ..live.wire import queue_wire, stats_wire, worker_state, worker_wire
from .params import DeadLetterFilter, RunFilter

__all__ = [
    "chart_wire",
    "current_queues",
    "current_stats",
    "current_workers",
    "job_type_known",
    "list_activity_rows",
    "list_dead_letter_rows",
    "list_run_rows",
    "page_cursor",
]


def page_cursor(stamp: datetime, row_id: str) -> str:
    """The wire form of a keyset position: the same `<micros>.<uuid>` as a log cursor."""
    return str(LogCursor(stamp, row_id))


def _one_page(rows: list[Row], limit: int, stamp: str) -> tuple[list[Row], str | None]:
    """At most `limit` of rows read with `limit + 1`, and the cursor of the next page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, page_cursor(rows[-1][stamp], str(rows[-1]["id"]))


async def list_run_rows(database: Database, runs: RunFilter) -> tuple[list[Row], str | None]:
    """One page of runs (newest first) and the cursor of the next page, if there is one:
    the list, or the search's matches when the filter has one."""
    search = runs.search
    if search is None:
        rows = await database.list_runs(
            status=runs.status,
            job_type=runs.job_type,
            queue=runs.queue,
            before=runs.before,
            limit=runs.limit + 1,
        )
    else:
        rows = await database.search_runs(
            text=search.text,
            id_prefix=search.id_prefix,
            ids_everywhere=search.ids_everywhere,
            window=search.window,
            status=runs.status,
            job_type=runs.job_type,
            queue=runs.queue,
            before=runs.before,
            limit=runs.limit + 1,
        )
    return _one_page(rows, runs.limit, "created_at")


async def list_dead_letter_rows(
    database: Database, entries: DeadLetterFilter
) -> tuple[list[Row], str | None]:
    """One page of dead-letter entries (newest first) and the cursor of the next page."""
    rows = await database.list_dead_letter(
        status=entries.status,
        job_type=entries.job_type,
        before=entries.before,
        limit=entries.limit + 1,
    )
    return _one_page(rows, entries.limit, "moved_at")


async def list_activity_rows(
    database: Database, before: tuple[datetime, str] | None, limit: int
) -> tuple[list[Row], str | None]:
    """One page of the audit trail (newest first) and the cursor of the next page."""
    rows = await database.list_activity(before=before, limit=limit + 1)
    return _one_page(rows, limit, "at")


async def current_stats(app: web.Application) -> dict[str, Any]:
    """The coalescer's latest stats while the bridge keeps them fresh; a query otherwise."""
    stats = app[STATS]
    if stats.latest is not None and app[BRIDGE].listening.is_set():
        return stats.latest
    return stats_wire(await app[DATABASE].stats(app[SETTINGS].stats_exact_limit))


async def current_queues(app: web.Application) -> list[dict[str, Any]]:
    """The coalescer's latest queues (ages counted on to now) while the bridge keeps them
    fresh; a query otherwise."""
    queues = app[STATS].queues()
    if queues is not None and app[BRIDGE].listening.is_set():
        return queues
    return [queue_wire(row) for row in await app[DATABASE].queues()]


async def current_workers(app: web.Application) -> list[dict[str, Any]]:
    """Every worker that has sent a heartbeat, with its state (active, stale, stopped)."""
    rows = await app[DATABASE].all_workers()
    stale_after = app[SETTINGS].worker_stale_after
    return [worker_wire(row, worker_state(row, stale_after)) for row in rows]


async def job_type_known(database: Database, job_type: str) -> bool:
    """A job type has a page when it has a definition or at least one run."""
    return await database.definition(job_type) is not None or await database.job_type_has_runs(
        job_type
    )


def chart_wire(insights: Mapping[str, Any]) -> dict[str, Any]:
    """The overview chart (`/api/runs-per-minute`): the buckets of the insights of all
    job types, without their durations."""
    return {
        "range": insights["range"],
        "from": insights["from"],
        "to": insights["to"],
        "bucketSeconds": insights["bucketSeconds"],
        "buckets": [
            {key: bucket[key] for key in ("start", "completed", "failed", "cancelled")}
            for bucket in insights["buckets"]
        ],
    }
