"""Scenario 3: statements PostgreSQL executes for N open dashboards, against polling."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from .client import ClientPool
from .hubs import EVENTS_PATH
from .polling import POLL_INTERVAL, poll_overview
from .postgres import BenchPostgres, connect, seed_runs, seed_workers
from .report import Plot, Ratio, ScenarioResult, Target
from .servers import running_server

__all__ = ["run"]

T = TypeVar("T")

VIEWERS = (1, 10, 100)
RUN_CHANGES_PER_SECOND = 2.0
LOG_BATCHES_PER_SECOND = 1.0


class SteadyWriter(threading.Thread):
    """An executor's steady stream of changes: run status updates and 10-line log batches."""

    def __init__(self, dsn: str, run_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self._connection = connect(dsn, "zapjobs_bench_writer")
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.backend_pid = int(cursor.fetchone()[0])
        self._run_ids = run_ids
        self._stopping = threading.Event()

    def run(self) -> None:
        tick = 0
        per_log_batch = int(RUN_CHANGES_PER_SECOND / LOG_BATCHES_PER_SECOND)
        with self._connection.cursor() as cursor:
            while not self._stopping.wait(1 / RUN_CHANGES_PER_SECOND):
                tick += 1
                run_id = self._run_ids[tick % len(self._run_ids)]
                cursor.execute(
                    "UPDATE zapjobs.runs SET status = %s, progress = %s WHERE id = %s",
                    (2 + tick % 2, tick, run_id),
                )
                if tick % per_log_batch == 0:
                    cursor.execute(
                        "INSERT INTO zapjobs.logs (id, run_id, message, timestamp)"
                        " SELECT gen_random_uuid(), %s, 'line ' || n,"
                        " clock_timestamp() AT TIME ZONE 'utc' FROM generate_series(1, 10) n",
                        (run_id,),
                    )

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)
        self._connection.close()


class StatementLog:
    """Counts the statements PostgreSQL logged (log_statement = all on the database)."""

    def __init__(self, path: Path, ignored_pids: set[int]) -> None:
        self._path = path
        self._ignored = {f"[{pid}]".encode() for pid in ignored_pids}
        self._offset = 0

    def mark(self) -> None:
        self._offset = self._path.stat().st_size

    def count(self) -> int:
        with self._path.open("rb") as log:
            log.seek(self._offset)
            text = log.read()
        return sum(
            1
            for line in text.splitlines()
            if b"LOG:  statement: " in line and not any(pid in line for pid in self._ignored)
        )


def _counted(statements: StatementLog, action: Callable[[], T]) -> tuple[int, float, T]:
    """The statements PostgreSQL logged while `action` ran, the seconds it took, and what
    it returned."""
    statements.mark()
    began = time.monotonic()
    returned = action()
    time.sleep(0.2)  # the last statements reach the log
    return statements.count(), time.monotonic() - began, returned


def _poll(base_url: str, viewers: int, seconds: float) -> int:
    """Polling dashboards for `seconds`; returns their refreshes."""
    return asyncio.run(poll_overview(base_url, viewers, seconds))


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        3,
        "Database load: open dashboards against polling",
        [
            "viewers",
            "zapjobs-sse statements/s",
            "polling statements/s",
            "polling statements / refresh",
            "zapjobs-sse / polling",
        ],
    )
    if postgres.log_file is None:
        result.notes.append(
            "Skipped: counting statements reads the embedded server's log (ZAPJOBS_BENCH_DSN set)."
        )
        return result
    window = 3.0 if quick else 20.0
    polling_window = max(window, POLL_INTERVAL)
    viewer_counts = (VIEWERS[0], VIEWERS[-1]) if quick else VIEWERS
    ours: dict[int, float] = {}
    polling: dict[int, float] = {}
    per_refresh: dict[int, float] = {}
    with postgres.database("dbload") as dsn:
        run_ids = seed_runs(dsn, 500)
        seed_workers(dsn, 3)
        admin = connect(dsn)
        with admin.cursor() as cursor:
            cursor.execute("SELECT current_database(), pg_backend_pid()")
            name, admin_pid = cursor.fetchone()
            cursor.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
        admin.close()
        writer = SteadyWriter(dsn, run_ids)
        statements = StatementLog(postgres.log_file, {writer.backend_pid, admin_pid})
        writer.start()
        with running_server("zapjobs-sse", dsn) as server:
            try:
                for viewers in viewer_counts:
                    with ClientPool(
                        "127.0.0.1", server.port, EVENTS_PATH, viewers, processes=1
                    ) as pool:
                        pool.connect()
                        time.sleep(1.0)
                        count, seconds, _ = _counted(statements, partial(time.sleep, window))
                        ours[viewers] = count / seconds
            finally:
                writer.stop()
            # A refresh's statements do not depend on the changes; without them, the
            # server's own statements, subtracted below, are few and steady.
            time.sleep(1.0)
            count, seconds, _ = _counted(statements, partial(time.sleep, window))
            idle = count / seconds
            base_url = f"http://127.0.0.1:{server.port}"
            for viewers in viewer_counts:
                count, seconds, refreshes = _counted(
                    statements, partial(_poll, base_url, viewers, polling_window)
                )
                per_refresh[viewers] = max(0.0, count - idle * seconds) / refreshes
                polling[viewers] = viewers * per_refresh[viewers] / POLL_INTERVAL
    for viewers in viewer_counts:
        ratio = ours[viewers] / polling[viewers] if polling[viewers] else float("inf")
        result.rows.append(
            [
                str(viewers),
                f"{ours[viewers]:.2f}",
                f"{polling[viewers]:.2f}",
                f"{per_refresh[viewers]:.2f}",
                f"{ratio:.3f}",
            ]
        )
    most, fewest = max(viewer_counts), min(viewer_counts)
    flat = ours[most] <= 1.25 * ours[fewest] + 0.5
    fewer = polling[most] / ours[most] if ours[most] else float("inf")
    result.targets += [
        Target(
            "zapjobs-sse statement rate does not grow with viewers",
            f"{ours[fewest]:.2f}/s at {fewest} viewer, {ours[most]:.2f}/s at {most}",
            flat,
        ),
        Target.of_ratio(
            f"at {most} viewers <= 1/50 of polling's statements",
            f"{ours[most]:.2f}/s vs {polling[most]:.2f}/s = 1/{fewer:.1f}",
            Ratio(
                fewer,
                50.0,
                known_limit="every change is read at once, so the rate follows the changes,"
                " not the viewers; 1/50 needs about 5x more viewers at this change rate",
            ),
        ),
    ]
    result.notes += [
        "Statements are counted exactly from the PostgreSQL log: the benchmark database has"
        " `log_statement = 'all'`, and the writer's and the benchmark's own sessions are left"
        " out, so the count is every statement the dashboard side sent.",
        f"Changes: {RUN_CHANGES_PER_SECOND:g} run status updates/s and"
        f" {LOG_BATCHES_PER_SECOND:g} 10-line log batch/s, 500 runs, 3 workers.",
        "zapjobs-sse: the server's statements with N open streams (`events`, every topic).",
        "Polling: N real polling dashboards (bench/polling.py) on the same server's JSON API,"
        " each loading the overview (stats, 20 recent runs, workers: three requests) every"
        f" {POLL_INTERVAL:g} s, as the ZapJobs dashboard's refresh does. Their statements per"
        " refresh = (the server's statements while they poll - its rate with no viewer"
        f" ({idle:.2f}/s) x the time) / their refreshes, measured after the writer stopped,"
        " so that the server's own statements are few; polling statements/s = N x that /"
        f" {POLL_INTERVAL:g} s. `/api/stats` answers from the stats the live side keeps"
        " fresh, so a refresh costs the runs and the workers queries.",
        f"Window: {window:g} s per point (polling: {polling_window:g} s, each viewer"
        " refreshing the same number of times)"
        + ("; quick mode: 1 and 100 viewers only." if quick else "."),
    ]
    result.plots.append(
        Plot(
            "bench-dbload.png",
            "Statements per second against open dashboards",
            "viewers",
            "statements per second",
            {
                "zapjobs-sse": [(float(v), ours[v]) for v in viewer_counts],
                "polling every 5 s": [(float(v), polling[v]) for v in viewer_counts],
            },
            log_x=True,
            limit=None,
        )
    )
    return result
