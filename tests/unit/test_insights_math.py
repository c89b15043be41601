"""The insights' arithmetic: percentiles from the rollups' histograms against
PostgreSQL's percentile_cont (computed here the way PostgreSQL defines it), the ranges'
buckets, and the cache all viewers share."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import datetime
from typing import Any

import pytest

from zapjobs_sse.db import DatabaseUnavailable
from zapjobs_sse.server.http.insights import (
    RANGES,
    InsightsCache,
    bucket_value,
    histogram_percentile,
)
from zapjobs_sse.server.live.rollups import RunHours


def percentile_cont(values: list[int], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the two ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def bucket_of(ms: int) -> int:
    """Migration 009's zapjobs.sse_duration_bucket_v1."""
    return 0 if ms < 1 else 1 + math.floor(math.log(ms) / math.log(1.1))


def histogram(values: list[int]) -> tuple[list[int], list[int]]:
    counts: dict[int, int] = {}
    for value in values:
        counts[bucket_of(value)] = counts.get(bucket_of(value), 0) + 1
    ordered = sorted(counts)
    return ordered, [counts[b] for b in ordered]


@pytest.mark.parametrize("seed", range(20))
def test_histogram_percentiles_are_within_5_percent_of_percentile_cont(seed: int) -> None:
    rng = random.Random(seed)
    values = [
        max(1, int(rng.lognormvariate(rng.uniform(2, 9), rng.uniform(0.2, 2))))
        for _ in range(rng.randint(1, 3000))
    ]
    buckets, counts = histogram(values)
    for fraction in (0.5, 0.95, 0.99):
        estimate = histogram_percentile(buckets, counts, fraction)
        exact = percentile_cont(values, fraction)
        assert estimate == pytest.approx(exact, rel=0.05), (fraction, len(values))


def test_every_bucket_stands_within_5_percent_of_each_duration_in_it() -> None:
    for ms in [*range(1, 2000), 10**5, 3_600_000, 86_400_000, 2**31 - 1]:
        assert bucket_value(bucket_of(ms)) == pytest.approx(ms, rel=0.049)
    assert bucket_value(bucket_of(0)) == 0.0


def test_an_empty_histogram_has_no_percentile() -> None:
    assert histogram_percentile([], [], 0.5) is None
    assert histogram_percentile([5], [1], 0.99) == bucket_value(5)


@pytest.mark.parametrize("name", list(RANGES))
def test_each_range_spans_what_it_says(name: str) -> None:
    chosen = RANGES[name]
    now = datetime(2026, 12, 2, 10, 17, 31)
    since, until = chosen.bounds(now)
    assert until == now and until - since == chosen.span
    assert chosen.exact == (name in ("1h", "24h"))


class CountingDatabase:
    """The two statements the insights of all job types read, counted."""

    def __init__(self) -> None:
        self.calls = 0

    async def insights_exact(self, *args: Any) -> list[dict[str, Any]]:
        self.calls += 1
        await asyncio.sleep(0.01)
        return []

    async def insights_hours(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls += 1
        return []


async def test_viewers_share_one_answer_until_a_run_of_its_job_type_finishes() -> None:
    database = CountingDatabase()
    hours = RunHours(database)  # type: ignore[arg-type]
    cache = InsightsCache(database, hours)  # type: ignore[arg-type]
    day = RANGES["24h"]
    answers = await asyncio.gather(*(cache.get(None, day) for _ in range(50)))
    assert database.calls == 1 and all(a is answers[0] for a in answers)
    await asyncio.sleep(1.05)  # older than the minimum age, but nothing finished
    await cache.get(None, day)
    assert database.calls == 1
    hours.note([{"completed_at": datetime(2026, 12, 2), "status": 3, "job_type_id": "x"}])
    await cache.get(None, day)
    assert database.calls == 2
    hours.note([{"completed_at": None, "status": 2, "job_type_id": "x"}])  # still running
    await asyncio.sleep(1.05)
    await cache.get(None, day)
    assert database.calls == 2


class FailingDatabase:
    """Rebuilds, then every write of the rollups fails (the database went away)."""

    def __init__(self) -> None:
        self.writes = 0

    async def rewrite_run_hours(self, *args: Any) -> None:
        self.writes += 1
        if self.writes > 1:
            raise DatabaseUnavailable("gone")

    async def forget_run_hours(self, *args: Any) -> None:
        pass

    async def recompute_run_hours(self, *args: Any) -> None:
        self.writes += 1
        raise DatabaseUnavailable("gone")


async def test_failed_rollup_writes_are_retried_at_the_interval_not_at_once() -> None:
    database = FailingDatabase()
    hours = RunHours(database, interval=0.1)  # type: ignore[arg-type]
    task = asyncio.create_task(hours.run())
    await asyncio.sleep(0.05)
    hours.note([{"completed_at": datetime(2026, 12, 2), "status": 3, "job_type_id": "x"}])
    hours.lost()
    await asyncio.sleep(0.55)
    task.cancel()
    assert hours.ready.is_set()
    assert 3 <= database.writes <= 8, database.writes
