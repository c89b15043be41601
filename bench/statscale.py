"""Scenario 4: the cost of one stats refresh on a small and on a large history."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from zapjobs_sse.db import Database

from .postgres import BenchPostgres, connect
from .report import Ratio, ScenarioResult, Target

__all__ = ["EVEN", "LOGS_PER_RUN", "Profile", "generate", "run"]

LOGS_PER_RUN = 10
RUNS_PER_DAY = 5_000
EXACT_LIMIT = 50_000  # the server's default --stats-exact-limit


@dataclass(frozen=True)
class Profile:
    """What a generated history looks like: the statements that insert it.

    Each statement is run with the parameters `runs` (how many), `spacing` (seconds between
    two runs, from `runs_per_day`), `per_run` (LOGS_PER_RUN) and the profile's own `params`.
    """

    definitions: str
    runs: str
    logs: str
    runs_per_day: int = RUNS_PER_DAY
    params: dict[str, Any] = field(default_factory=dict)
    # Tables loaded without their indexes, which are built afterwards (faster).
    unindexed: tuple[str, ...] = ("logs",)


# Scenario 4's history: ten job types in turn, 10% failed, no durations, inputs or errors.
EVEN = Profile(
    definitions="INSERT INTO zapjobs.definitions (job_type_id, display_name)"
    " SELECT 'job-' || n, 'Job ' || n FROM generate_series(0, 9) n",
    # The daily volume stays the same whatever the size: a bigger history is a longer
    # one. Pending and running runs are the newest few (live work).
    runs="INSERT INTO zapjobs.runs (id, job_type_id, status, created_at, completed_at)"
    " SELECT gen_random_uuid(), 'job-' || (n %% 10), s.status,"
    "  now() AT TIME ZONE 'utc' - n * %(spacing)s * interval '1 second',"
    "  CASE WHEN s.status IN (3, 4) THEN now() AT TIME ZONE 'utc'"
    "   - n * %(spacing)s * interval '1 second' END"
    " FROM generate_series(1, %(runs)s) n,"
    "  LATERAL (SELECT CASE WHEN n <= 100 THEN n %% 2 * 2"
    "   WHEN n %% 10 = 2 THEN 4 ELSE 3 END AS status) s",
    logs="INSERT INTO zapjobs.logs (id, run_id, message, timestamp)"
    " SELECT gen_random_uuid(), r.id, 'line ' || k, r.created_at"
    "  + k * interval '1 millisecond'"
    " FROM zapjobs.runs r, generate_series(1, %(per_run)s) k",
)


def _drop_indexes(cursor: Any, table: str) -> list[str]:
    """Drops the table's indexes and key constraints; returns the statements that rebuild them."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
        (f"zapjobs.{table}",),
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i"
        " WHERE indrelid = %s::regclass"
        " AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (f"zapjobs.{table}",),
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f"ALTER TABLE zapjobs.{table} DROP CONSTRAINT {name}")
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    return [
        *(
            f"ALTER TABLE zapjobs.{table} ADD CONSTRAINT {name} {body}"
            for name, body in constraints
        ),
        *(definition for _, definition in indexes),
    ]


def generate(dsn: str, runs: int, profile: Profile = EVEN) -> float:
    """`runs` runs, the newest `profile.runs_per_day` a day, and LOGS_PER_RUN log lines
    each, as the profile shapes them; returns seconds."""
    started = time.monotonic()
    params = {
        **profile.params,
        "runs": runs,
        "spacing": 86400 / profile.runs_per_day,
        "per_run": LOGS_PER_RUN,
    }
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            # Bulk history, not live changes: no notification triggers while loading.
            cursor.execute("SET session_replication_role = replica")
            cursor.execute(profile.definitions, params)
            rebuild = [
                statement
                for table in profile.unindexed
                for statement in _drop_indexes(cursor, table)
            ]
            cursor.execute(profile.runs, params)
            cursor.execute(profile.logs, params)
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for statement in rebuild:
                cursor.execute(statement)
            # A settled table, as a long-lived one is: hint bits and visibility map set.
            for table in ("definitions", "runs", "logs"):
                cursor.execute(f"VACUUM ANALYZE zapjobs.{table}")
    finally:
        connection.close()
    return time.monotonic() - started


SERVED = f"served: `stats`, exact below {EXACT_LIMIT:,} rows"
EXACT = "exact: `stats` with no limit"
COUNT = "count whole tables: `count(*)` of runs and logs"


@dataclass(frozen=True)
class Timing:
    """The median time of one query and what its totals were: exact counts or estimates."""

    seconds: float
    totals: str

    def cell(self) -> str:
        return f"{self.seconds * 1000:.2f} ms ({self.totals})"


def _totals(row: dict[str, Any]) -> str:
    """Which of the whole-table totals of a stats row were counted and which estimated."""
    runs = "estimated" if row["total_runs_estimated"] else "exact"
    logs = "estimated" if row["total_log_entries_estimated"] else "exact"
    return runs if runs == logs else f"runs {runs}, logs {logs}"


async def _timings(dsn: str, repeat: int) -> dict[str, Timing]:
    database = await Database.open(dsn, size=1)
    connection = connect(dsn)

    async def median(query: str) -> Timing:
        samples = []
        totals = "exact"
        for attempt in range(repeat + 1):
            started = time.perf_counter()
            if query == SERVED:
                totals = _totals(await database.stats(EXACT_LIMIT))
            elif query == EXACT:
                totals = _totals(await database.stats(2**62))
            else:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT (SELECT count(*) FROM zapjobs.runs),"
                        " (SELECT count(*) FROM zapjobs.logs)"
                    )
            if attempt:  # the first one warms the cache
                samples.append(time.perf_counter() - started)
        return Timing(statistics.median(samples), totals)

    try:
        return {query: await median(query) for query in (SERVED, EXACT, COUNT)}
    finally:
        connection.close()
        await database.close()


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    sizes = (10_000, 60_000) if quick else (10_000, 2_000_000)
    result = ScenarioResult(
        4,
        "Stats refresh at scale",
        ["query", f"{sizes[0]:,} runs", f"{sizes[1]:,} runs", "large / small"],
    )
    repeat = 5 if quick else 20
    timings: list[dict[str, Timing]] = []
    for runs in sizes:
        with postgres.database("stats") as dsn:
            seconds = generate(dsn, runs)
            timings.append(asyncio.run(_timings(dsn, repeat)))
            result.notes.append(
                f"{runs:,} runs / {runs * LOGS_PER_RUN:,} logs generated in {seconds:.0f} s."
            )
    small, large = timings
    for query in small:
        result.rows.append(
            [
                query,
                small[query].cell(),
                large[query].cell(),
                f"{large[query].seconds / small[query].seconds:.1f}x",
            ]
        )
    served = large[SERVED].seconds / small[SERVED].seconds
    exact = large[EXACT].seconds / small[EXACT].seconds
    result.targets.append(
        Target.of_ratio(
            f"one stats refresh (the served query) at {sizes[1]:,} runs <= 2x its cost at"
            f" {sizes[0]:,} runs",
            f"{served:.2f}x ({small[SERVED].totals} at {sizes[0]:,},"
            f" {large[SERVED].totals} at {sizes[1]:,}; the exact query: {exact:.0f}x)",
            Ratio(served, 2.0, at_least=False),
        )
    )
    result.notes += [
        f"`stats` is the server's query (zapjobs_sse/db/sql/queries.sql). Served, with the"
        f" server's default exact limit of {EXACT_LIMIT:,} rows, a total of a table with more"
        " live rows than the limit is the statistics collector's live-tuple estimate; each"
        " cell says which totals were exact and which estimated. The exact query is the"
        " same with no limit: every total counted. Median of"
        f" {repeat} runs after one warm-up.",
        f"{RUNS_PER_DAY:,} runs a day whatever the size (a larger history is a longer one);"
        " the newest 100 are pending or running, 10% of the rest failed, the others"
        f" completed; {LOGS_PER_RUN} log lines each.",
    ]
    if quick:
        result.notes.append(
            f"Quick mode: {sizes[1]:,} runs / {sizes[1] * LOGS_PER_RUN:,} logs instead of"
            " 2,000,000 / 20,000,000."
        )
    return result
