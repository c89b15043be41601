"""What the JSON API and the pages both read: pages of runs and dead letter, stats,
queues, workers and the runs-per-minute chart, in the wire shapes of the stream."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from ...db import Database, Row
from ...db.cursors import LogCursor
from ..keys import BRIDGE, DATABASE, SETTINGS, STATS
from ..live.wire import queue_wire, stats_wire, timestamp, worker_state, worker_wire
from .params import DeadLetterFilter, RunFilter
from .times import utc_now

__all__ = [
    "chart_minutes",
    "current_queues",
    "current_stats",
    "current_workers",
    "list_activity_rows",
    "list_dead_letter_rows",
    "list_run_rows",
    "page_cursor",
    "recent_minutes",
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
    """One page of runs (newest first) and the cursor of the next page, if there is one."""
    rows = await database.list_runs(
        status=runs.status, job_type=runs.job_type, before=runs.before, limit=runs.limit + 1
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


async def recent_minutes(database: Database) -> list[dict[str, Any]]:
    """The runs-per-minute chart: completed and failed runs of the last sixty minutes."""
    return chart_minutes(await database.runs_per_minute(), utc_now())


def chart_minutes(rows: list[Row], now: datetime) -> list[dict[str, Any]]:
    """Sixty one-minute buckets ending with the current minute, zeros included."""
    current = now.replace(second=0, microsecond=0)
    counts: Mapping[datetime, Row] = {row["minute"]: row for row in rows}
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
