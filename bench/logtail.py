"""Scenario 6: one run writing thousands of log lines a second, tailed by many streams."""

from __future__ import annotations

import time

import numpy as np

from .client import ClientPool
from .fanout import commit_delays
from .hubs import EVENTS_PATH
from .postgres import BenchPostgres, connect, seed_runs
from .report import ScenarioResult, Target
from .servers import running_server

__all__ = ["run"]

LINES_PER_SECOND = 5000
BATCH = 100
SUBSCRIBERS = 100


def write_lines(dsn: str, run_id: str, seconds: float) -> np.ndarray:
    """Batches of BATCH lines "L<n>" at LINES_PER_SECOND; returns each line's commit time."""
    connection = connect(dsn, "zapjobs_bench_writer")
    batches = int(seconds * LINES_PER_SECOND / BATCH)
    commits = np.zeros(batches * BATCH)
    started = time.monotonic()
    with connection.cursor() as cursor:
        for batch in range(batches):
            pause = started + batch * BATCH / LINES_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            first = batch * BATCH + 1
            cursor.execute(
                "INSERT INTO zapjobs.logs (id, run_id, level, message, timestamp)"
                " SELECT gen_random_uuid(), %s, 2, 'L' || n,"
                " clock_timestamp() AT TIME ZONE 'utc' + (n - %s) * interval '1 microsecond'"
                " FROM generate_series(%s, %s) n",
                (run_id, first, first, first + BATCH - 1),
            )
            commits[batch * BATCH : (batch + 1) * BATCH] = time.time()
    connection.close()
    return commits


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        6,
        f"Log tail: {LINES_PER_SECOND:,} lines/s of one run to {SUBSCRIBERS} streams",
        ["lines written", "streams", "every line, in order", "p50 ms", "p99 ms", "lines/s"],
    )
    seconds = 1.5 if quick else 10.0
    with postgres.database("logtail") as dsn:
        run_id = seed_runs(dsn, 1)[0]
        with (
            running_server("zapjobs-sse", dsn) as server,
            ClientPool(
                "127.0.0.1",
                server.port,
                f"{EVENTS_PATH}?run={run_id}&topics=",
                SUBSCRIBERS,
                processes=2,
                pattern=rb'"message":"L(\d+)"',
                check_order=True,
            ) as pool,
        ):
            opened = pool.connect()
            time.sleep(1.0)
            pool.record()
            began = time.monotonic()
            commits = write_lines(dsn, run_id, seconds)
            achieved = len(commits) / (time.monotonic() - began)
            time.sleep(2.0)
            collected = pool.collect()
    keys = np.frombuffer(collected.keys, dtype=np.int64)
    times = np.frombuffer(collected.times, dtype=np.float64)
    delays = commit_delays(keys, times, 1, commits)
    complete = (
        opened == SUBSCRIBERS
        and all(count == len(commits) for count in collected.per_connection)
        and collected.out_of_order == 0
    )
    p50 = float(np.percentile(delays, 50)) if len(delays) else float("nan")
    p99 = float(np.percentile(delays, 99)) if len(delays) else float("nan")
    fewest = min(collected.per_connection, default=0)
    result.rows.append(
        [
            f"{len(commits):,}",
            f"{opened}",
            "yes" if complete else f"no (fewest {fewest:,}, {collected.out_of_order} out of order)",
            f"{p50 * 1000:.0f}",
            f"{p99 * 1000:.0f}",
            f"{achieved:,.0f}",
        ]
    )
    result.targets.append(
        Target(
            f"every line delivered to each of {SUBSCRIBERS} streams, in order",
            f"{'all' if complete else 'NOT all'}; p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
            complete,
        )
    )
    result.notes += [
        f"The writer commits {BATCH}-line batches ('L1', 'L2', ...) on a steady schedule for"
        f" {seconds:g} s; the streams subscribe with `events?run=<id>&topics=`. Each client"
        " checks that line n+1 follows line n; delay = arrival - commit of the line's batch.",
    ]
    return result
