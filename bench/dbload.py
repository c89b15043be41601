"""Scenario 3: statements PostgreSQL executes for N open dashboards, against polling."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

from zapjobs_sse.db import Database

from .client import ClientPool
from .hubs import EVENTS_PATH
from .postgres import BenchPostgres, connect, seed_runs
from .report import Plot, ScenarioResult, Target
from .servers import running_server

__all__ = ["run"]

POLL_INTERVAL = 5.0
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


async def _poll(dsn: str, viewers: int, seconds: float) -> None:
    """Every viewer reloads the overview's data every POLL_INTERVAL seconds."""
    database = await Database.open(dsn, size=5)

    async def viewer(index: int) -> None:
        await asyncio.sleep(POLL_INTERVAL * index / viewers)  # spread evenly over the interval
        while True:
            await database.stats(50_000)
            await database.list_runs(status=None, job_type=None, before=None, limit=20)
            await database.all_workers()
            await asyncio.sleep(POLL_INTERVAL)

    tasks = [asyncio.create_task(viewer(index)) for index in range(viewers)]
    try:
        await asyncio.sleep(seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await database.close()


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        3,
        "Database load: open dashboards against polling",
        ["viewers", "zapjobs-sse statements/s", "polling statements/s", "zapjobs-sse / polling"],
    )
    if postgres.log_file is None:
        result.notes.append(
            "Skipped: counting statements reads the embedded server's log (ZAPJOBS_BENCH_DSN set)."
        )
        return result
    window = 4.0 if quick else 20.0
    viewer_counts = (VIEWERS[0], VIEWERS[-1]) if quick else VIEWERS
    ours: dict[int, float] = {}
    polling: dict[int, float] = {}
    with postgres.database("dbload") as dsn:
        run_ids = seed_runs(dsn, 500)
        admin = connect(dsn)
        with admin.cursor() as cursor:
            cursor.execute("SELECT current_database(), pg_backend_pid()")
            name, admin_pid = cursor.fetchone()
            cursor.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
            cursor.execute(
                "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
                " SELECT %s::uuid, 'worker-' || n, 'host', n, now() AT TIME ZONE 'utc'"
                " FROM generate_series(1, 3) n ON CONFLICT DO NOTHING",
                (str(uuid.uuid4()),),
            )
        admin.close()
        writer = SteadyWriter(dsn, run_ids)
        statements = StatementLog(postgres.log_file, {writer.backend_pid, admin_pid})
        writer.start()
        try:
            with running_server("zapjobs-sse", dsn) as server:
                for viewers in viewer_counts:
                    with ClientPool(
                        "127.0.0.1", server.port, EVENTS_PATH, viewers, processes=1
                    ) as pool:
                        pool.connect()
                        time.sleep(1.0)
                        statements.mark()
                        time.sleep(window)
                        ours[viewers] = statements.count() / window
            polling_window = max(window, POLL_INTERVAL)
            for viewers in viewer_counts:
                # Viewers start spread over one interval: the rate is steady from the start.
                statements.mark()
                asyncio.run(_poll(dsn, viewers, polling_window))
                time.sleep(0.2)
                polling[viewers] = statements.count() / polling_window
        finally:
            writer.stop()
    for viewers in viewer_counts:
        ratio = ours[viewers] / polling[viewers] if polling[viewers] else float("inf")
        result.rows.append(
            [str(viewers), f"{ours[viewers]:.2f}", f"{polling[viewers]:.2f}", f"{ratio:.3f}"]
        )
    most, fewest = max(viewer_counts), min(viewer_counts)
    flat = ours[most] <= 1.25 * ours[fewest] + 0.5
    result.targets += [
        Target(
            "zapjobs-sse statement rate does not grow with viewers",
            f"{ours[fewest]:.2f}/s at {fewest} viewer, {ours[most]:.2f}/s at {most}",
            flat,
        ),
        Target(
            f"at {most} viewers <= 1/50 of polling's statements",
            f"{ours[most]:.2f}/s vs {polling[most]:.2f}/s = 1/{polling[most] / ours[most]:.1f}",
            ours[most] * 50 <= polling[most],
        ),
    ]
    result.notes += [
        "Statements are counted exactly from the PostgreSQL log: the benchmark database has"
        " `log_statement = 'all'`, and the writer's and the benchmark's own sessions are left"
        " out, so the count is every statement the dashboard side sent.",
        f"Changes: {RUN_CHANGES_PER_SECOND:g} run status updates/s and"
        f" {LOG_BATCHES_PER_SECOND:g} 10-line log batch/s, 500 runs, 3 workers.",
        f"Polling: each viewer loads the overview's data (stats, 20 recent runs, workers: 3"
        f" statements, as the ZapJobs dashboard's refresh does) every {POLL_INTERVAL:g} s,"
        " viewers spread evenly over the interval.",
        f"Window: {window:g} s per point (polling: at least one interval)"
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
