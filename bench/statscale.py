"""Scenario 4: the cost of one stats refresh on a small and on a large history."""

from __future__ import annotations

import asyncio
import statistics
import time

from zapjobs_sse.db import Database

from .postgres import BenchPostgres, connect
from .report import ScenarioResult, Target

__all__ = ["run"]

LOGS_PER_RUN = 10
RUNS_PER_DAY = 5_000
EXACT_LIMIT = 50_000  # the server's default --stats-exact-limit


def generate(dsn: str, runs: int) -> float:
    """`runs` runs over the last two days and LOGS_PER_RUN log lines each; returns seconds."""
    started = time.monotonic()
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            # Bulk history, not live changes: no notification triggers while loading.
            cursor.execute("SET session_replication_role = replica")
            cursor.execute(
                "INSERT INTO zapjobs.definitions (job_type_id, display_name)"
                " SELECT 'job-' || n, 'Job ' || n FROM generate_series(0, 9) n"
            )
            # The daily volume stays the same whatever the size: a bigger history is a
            # longer one. Pending and running runs are the newest few (live work).
            cursor.execute(
                "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at, completed_at)"
                " SELECT gen_random_uuid(), 'job-' || (n %% 10), s.status,"
                "  now() AT TIME ZONE 'utc' - n * %(spacing)s * interval '1 second',"
                "  CASE WHEN s.status IN (3, 4) THEN now() AT TIME ZONE 'utc'"
                "   - n * %(spacing)s * interval '1 second' END"
                " FROM generate_series(1, %(runs)s) n,"
                "  LATERAL (SELECT CASE WHEN n <= 100 THEN n %% 2 * 2"
                "   WHEN n %% 10 = 2 THEN 4 ELSE 3 END AS status) s",
                {"runs": runs, "spacing": 86400 / RUNS_PER_DAY},
            )
            # Faster to load without the indexes and build them afterwards.
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'zapjobs'"
                " AND tablename = 'logs' AND indexname <> 'logs_pkey'"
            )
            definitions = [row[0] for row in cursor.fetchall()]
            cursor.execute("ALTER TABLE zapjobs.logs DROP CONSTRAINT logs_pkey")
            for definition in definitions:
                name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
                cursor.execute(f"DROP INDEX zapjobs.{name}")
            cursor.execute(
                "INSERT INTO zapjobs.logs (id, run_id, message, timestamp)"
                " SELECT gen_random_uuid(), r.id, 'line ' || k, r.created_at"
                "  + k * interval '1 millisecond'"
                " FROM zapjobs.runs r, generate_series(1, %(per_run)s) k",
                {"per_run": LOGS_PER_RUN},
            )
            cursor.execute("SET maintenance_work_mem = '256MB'")
            cursor.execute("ALTER TABLE zapjobs.logs ADD CONSTRAINT logs_pkey PRIMARY KEY (id)")
            for definition in definitions:
                cursor.execute(definition)
            # A settled table, as a long-lived one is: hint bits and visibility map set.
            cursor.execute("VACUUM ANALYZE zapjobs.runs")
            cursor.execute("VACUUM ANALYZE zapjobs.logs")
    finally:
        connection.close()
    return time.monotonic() - started


async def _timings(dsn: str, repeat: int) -> dict[str, float]:
    database = await Database.open(dsn, size=1)
    connection = connect(dsn)

    async def median(action: str) -> float:
        samples = []
        for attempt in range(repeat + 1):
            started = time.perf_counter()
            if action == "stats":
                await database.stats(EXACT_LIMIT)
            elif action == "exact stats":
                await database.stats(2**62)
            else:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT (SELECT count(*) FROM zapjobs.runs),"
                        " (SELECT count(*) FROM zapjobs.logs)"
                    )
            if attempt:  # the first one warms the cache
                samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    try:
        return {
            "stats": await median("stats"),
            "exact stats": await median("exact stats"),
            "count whole tables": await median("count whole tables"),
        }
    finally:
        connection.close()
        await database.close()


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        4,
        "Stats refresh at scale",
        ["query", "small", "large", "ratio"],
    )
    sizes = (10_000, 100_000) if quick else (10_000, 2_000_000)
    repeat = 5 if quick else 20
    timings: list[dict[str, float]] = []
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
                f"{small[query] * 1000:.2f} ms",
                f"{large[query] * 1000:.2f} ms",
                f"{large[query] / small[query]:.1f}x",
            ]
        )
    ratio = large["stats"] / small["stats"]
    result.targets.append(
        Target(
            f"one stats refresh at {sizes[1]:,} runs <= 2x its cost at {sizes[0]:,} runs",
            f"{ratio:.2f}x (counting whole tables:"
            f" {large['count whole tables'] / small['count whole tables']:.0f}x)",
            ratio <= 2,
        )
    )
    result.notes += [
        f"`stats` is the server's query (zapjobs_sse/sql/queries.sql) with its default exact"
        f" limit of {EXACT_LIMIT:,} rows: totals above it are the planner's live-tuple"
        " estimates; `exact stats` forces exact counts; `count whole tables` is"
        " `count(*)` of runs and logs. Median of"
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
