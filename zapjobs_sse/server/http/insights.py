"""The insights of a job type (and the overview chart, all job types): counts, failure
rate, duration percentiles, runs per bucket and the most frequent errors over a range.

Up to a day the figures are exact (percentile_cont on the runs table); the 7- and 30-day
ranges merge the hourly rollups of live/rollups.py, whose duration histograms give the
percentiles within 5 % (`"estimated": true`). One cache for all viewers: an answer is
computed once per job type and range, again only when a run of that job type finished or
the answer is older than its range's refresh, and never more than once a second.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from ...db import Database, Row
from ..live.rollups import RunHours, hour_of
from ..live.wire import timestamp, utc_now

__all__ = [
    "DEFAULT_JOB_RANGE",
    "INSIGHTS",
    "OVERVIEW_RANGE",
    "RANGES",
    "InsightRange",
    "InsightsCache",
    "bucket_value",
    "histogram_percentile",
    "insights",
]

HOUR = timedelta(hours=1)
TOP_ERRORS = 5
# Every figure within 5 %: a histogram bucket's middle is within sqrt(1.1) - 1 of it.
BUCKET_RATIO = 1.1
# Recomputed at most this often, however many viewers ask and runs finish.
MIN_AGE = 1.0


@dataclass(frozen=True, slots=True)
class InsightRange:
    """A range a viewer can choose: its span, its chart's bucket, how long an answer
    stays current when nothing finishes, and its label."""

    name: str
    span: timedelta
    width: int
    refresh: float
    label: str

    @property
    def exact(self) -> bool:
        return self.span <= timedelta(hours=24)

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        return now - self.span, now


RANGES: dict[str, InsightRange] = {
    r.name: r
    for r in (
        InsightRange("1h", timedelta(hours=1), 60, 10.0, "last hour"),
        InsightRange("24h", timedelta(hours=24), 3600, 60.0, "last 24 hours"),
        InsightRange("7d", timedelta(days=7), 6 * 3600, 300.0, "last 7 days"),
        InsightRange("30d", timedelta(days=30), 86400, 300.0, "last 30 days"),
    )
}
DEFAULT_JOB_RANGE = "24h"
OVERVIEW_RANGE = "1h"


def bucket_value(bucket: int) -> float:
    """The duration a histogram bucket stands for (migration 009's buckets)."""
    return 0.0 if bucket <= 0 else BUCKET_RATIO ** (bucket - 0.5)


def histogram_percentile(
    buckets: Sequence[int], counts: Sequence[int], fraction: float
) -> float | None:
    """percentile_cont over a histogram: the same interpolation between the two ranks
    around `fraction * (n - 1)`, each rank standing at its bucket's middle."""
    total = sum(counts)
    if total == 0:
        return None
    position = fraction * (total - 1)
    low, high = math.floor(position), math.ceil(position)
    values: dict[int, float] = {}
    seen = 0
    for bucket, count in zip(buckets, counts, strict=True):
        for rank in (low, high):
            if rank not in values and rank < seen + count:
                values[rank] = bucket_value(bucket)
        seen += count
        if high in values:
            break
    return values[low] + (position - low) * (values[high] - values[low])


def _percentiles(buckets: Sequence[int], counts: Sequence[int]) -> dict[str, float | None]:
    return {
        name: _rounded(histogram_percentile(buckets, counts, fraction))
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _bucket_starts(since: datetime, until: datetime, width: int) -> list[datetime]:
    """The starts of the chart's buckets: multiples of `width` seconds since the epoch
    (as the SQL bins them), from the one holding `since` to the one holding `until`."""
    epoch = datetime(1970, 1, 1)
    first = int((since - epoch).total_seconds()) // width * width
    last = int((until - epoch).total_seconds()) // width * width
    return [epoch + timedelta(seconds=s) for s in range(first, last + 1, width)]


def _failure_rate(completed: int, failed: int) -> float | None:
    return None if completed + failed == 0 else round(failed / (completed + failed), 4)


async def _exact(
    database: Database, job_type: str | None, since: datetime, until: datetime, width: int
) -> tuple[dict[str, Any], dict[datetime, dict[str, Any]]]:
    rows = await database.insights_exact(job_type, since, until, width)
    total: dict[str, Any] = {"completed": 0, "failed": 0, "cancelled": 0}
    total["durationMs"] = {"p50": None, "p95": None, "p99": None}
    per_bucket: dict[datetime, dict[str, Any]] = {}
    for row in rows:
        durations = row["durations"] or [None, None, None]
        figures = {
            "completed": int(row["completed"]),
            "failed": int(row["failed"]),
            "cancelled": int(row["cancelled"]),
            "durationMs": {
                "p50": _rounded(durations[0]),
                "p95": _rounded(durations[1]),
                "p99": _rounded(durations[2]),
            },
        }
        if row["start"] is None:
            total = figures
        else:
            per_bucket[row["start"]] = figures
    return total, per_bucket


async def _estimated(
    database: Database,
    hours: RunHours,
    job_type: str | None,
    since: datetime,
    until: datetime,
    width: int,
) -> tuple[dict[str, Any], dict[datetime, dict[str, Any]]]:
    first_hour = since if since == hour_of(since) else hour_of(since) + HOUR
    cut = hours.live_since(first_hour, until)
    rows = await database.insights_hours(
        job_type, since, until, first_hour=first_hour, cut=cut, width=width
    )
    merged: dict[int, int] = {}
    totals = {"completed": 0, "failed": 0, "cancelled": 0}
    per_bucket: dict[datetime, dict[str, Any]] = {}
    for row in rows:
        for name in totals:
            totals[name] += int(row[name])
        for bucket, count in zip(row["buckets"], row["counts"], strict=True):
            merged[bucket] = merged.get(bucket, 0) + count
        per_bucket[row["start"]] = {
            "completed": int(row["completed"]),
            "failed": int(row["failed"]),
            "cancelled": int(row["cancelled"]),
            "durationMs": _percentiles(row["buckets"], row["counts"]),
        }
    ordered = sorted(merged)
    total: dict[str, Any] = dict(totals)
    total["durationMs"] = _percentiles(ordered, [merged[b] for b in ordered])
    return total, per_bucket


def _error_wire(row: Row) -> dict[str, Any]:
    return {
        "errorType": row["error_type"],
        "message": row["error_message"],
        "count": int(row["count"]),
        "lastSeen": timestamp(row["last_seen"]),
        "runId": str(row["run_id"]),
    }


async def insights(
    database: Database,
    hours: RunHours,
    job_type: str | None,
    chosen: InsightRange,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The insights answer of the API (for job_type None: of all job types, no errors)."""
    since, until = chosen.bounds(now or utc_now())
    # All job types over more than an hour (the overview): the rollups, whose counts are
    # exact too; its durations are not shown.
    exact = chosen.exact and (job_type is not None or chosen.span <= HOUR)
    if exact:
        total, per_bucket = await _exact(database, job_type, since, until, chosen.width)
    else:
        total, per_bucket = await _estimated(database, hours, job_type, since, until, chosen.width)
    empty = {"p50": None, "p95": None}
    buckets = []
    for start in _bucket_starts(since, until, chosen.width):
        figures = per_bucket.get(start)
        buckets.append(
            {
                "start": timestamp(start),
                "completed": figures["completed"] if figures else 0,
                "failed": figures["failed"] if figures else 0,
                "cancelled": figures["cancelled"] if figures else 0,
                "durationMs": {
                    "p50": figures["durationMs"]["p50"],
                    "p95": figures["durationMs"]["p95"],
                }
                if figures
                else dict(empty),
            }
        )
    answer: dict[str, Any] = {
        "jobTypeId": job_type,
        "range": chosen.name,
        "from": timestamp(since),
        "to": timestamp(until),
        "estimated": not exact,
        "completed": total["completed"],
        "failed": total["failed"],
        "cancelled": total["cancelled"],
        "failureRate": _failure_rate(total["completed"], total["failed"]),
        "durationMs": total["durationMs"],
        "bucketSeconds": chosen.width,
        "buckets": buckets,
    }
    if job_type is not None:
        rows = await database.insights_top_errors(job_type, since, until, TOP_ERRORS)
        answer["topErrors"] = [_error_wire(row) for row in rows]
    return answer


@dataclass(slots=True)
class _Entry:
    at: float
    version: tuple[int, int]
    answer: asyncio.Future[dict[str, Any]]


class InsightsCache:
    """One computation per (job type, range) for every viewer: reused while no run of
    the job type finished and it is younger than its range's refresh; concurrent askers
    share one query."""

    def __init__(self, database: Database, hours: RunHours) -> None:
        self._database = database
        self._hours = hours
        self._entries: dict[tuple[str | None, str], _Entry] = {}
        self.computed = 0

    async def get(self, job_type: str | None, chosen: InsightRange) -> dict[str, Any]:
        key = (job_type, chosen.name)
        version = self._hours.version(job_type)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None:
            age = now - entry.at
            failed = entry.answer.done() and entry.answer.exception() is not None
            if not failed and (
                age < MIN_AGE or (entry.version == version and age < chosen.refresh)
            ):
                return await asyncio.shield(entry.answer)
        future: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(
            insights(self._database, self._hours, job_type, chosen)
        )
        # Retrieved here too, so that a failure nobody awaits any more is not reported
        # as "never retrieved" (the next asker computes it again).
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._entries[key] = _Entry(now, version, future)
        self.computed += 1
        if len(self._entries) > 1000:  # job types come and go: forget the oldest
            oldest = min(self._entries, key=lambda k: self._entries[k].at)
            del self._entries[oldest]
        return await asyncio.shield(future)


INSIGHTS = web.AppKey("insights", InsightsCache)
