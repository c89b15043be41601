"""Throughput of the Python executor: no-op jobs per second, 1 and 4 workers, with the
notification triggers on and off.

    python -m bench.executor_throughput [--runs 2000] [--concurrency 4] [--repeat 3]

Each worker is a `zapjobs-sse worker` process (as deployed), with a dashboard-like
LISTEN connection open on the database. The runs are inserted in one statement once
the workers are idle; the clock runs from that commit to the last run Completed.
"Off" is `ALTER DATABASE ... SET zapjobs_sse.notify = off`: the triggers stay and
return at once. Uses an embedded PostgreSQL unless ZAPJOBS_BENCH_DSN is set.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from psycopg2 import sql

from zapjobs_sse.executor import JobContext, JobRegistry

from .postgres import BenchPostgres, connect, cpu_model, load_average

__all__ = ["main", "registry"]

registry = JobRegistry()


@registry.job("bench-noop", display_name="No-op", max_retries=0, max_concurrency=1000)
async def noop(ctx: JobContext, data: Any) -> Any:
    """Does nothing: what is measured is the executor's own cost per run."""
    return None


ROOT = Path(__file__).resolve().parent.parent


class Drain:
    """A LISTEN connection read continuously, as the dashboard's bridge does."""

    def __init__(self, dsn: str) -> None:
        self._connection = connect(dsn, "zapjobs_bench_listener")
        with self._connection.cursor() as cursor:
            cursor.execute("LISTEN zapjobs_sse")
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            if select.select([self._connection], [], [], 0.2)[0]:
                self._connection.poll()
                self.received += len(self._connection.notifies)
                self._connection.notifies.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._connection.close()


def _count(dsn: str, query: str) -> int:
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
            return int(row[0]) if row else 0
    finally:
        connection.close()


def _execute(dsn: str, statement: Any, params: Any = None) -> None:
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
    finally:
        connection.close()


def _insert_runs(dsn: str, count: int) -> None:
    _execute(
        dsn,
        "INSERT INTO zapjobs.runs (id, job_type_id, created_at)"
        " SELECT gen_random_uuid(), 'bench-noop', now() AT TIME ZONE 'utc'"
        " FROM generate_series(1, %s)",
        (count,),
    )


def _wait_completed(dsn: str, count: int, timeout: float) -> float:
    """Seconds until `count` runs are Completed."""
    started = time.perf_counter()
    while _count(dsn, "SELECT count(*) FROM zapjobs.runs WHERE status = 3") < count:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{count} runs not completed within {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def _start_workers(dsn: str, workers: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "zapjobs_sse",
        "worker",
        "--dsn",
        dsn,
        "--jobs",
        "bench.executor_throughput:registry",
        "--concurrency",
        str(concurrency),
        "--claim-interval",
        "0.05",
        "--log-level",
        "warning",
        "--log-format",
        "json",
    ]
    return [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]


def _stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(
    postgres: BenchPostgres, *, workers: int, notify: bool, runs: int, concurrency: int
) -> tuple[float, int]:
    """No-op runs per second, and the notifications a listener received meanwhile."""
    label = f"exec{workers}{'on' if notify else 'off'}"
    with postgres.database(label) as dsn:
        if not notify:
            connection = connect(dsn)
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT current_database()")
                    (name,) = cursor.fetchone() or ("",)
                    cursor.execute(
                        sql.SQL("ALTER DATABASE {} SET zapjobs_sse.notify = off").format(
                            sql.Identifier(name)
                        )
                    )
            finally:
                connection.close()
        drain = Drain(dsn)
        processes = _start_workers(dsn, workers, concurrency)
        try:
            # Warm-up: every worker connected, definitions registered, code paths hot.
            deadline = time.monotonic() + 60
            while _count(dsn, "SELECT count(*) FROM zapjobs.heartbeats") < workers:
                if time.monotonic() > deadline:
                    raise TimeoutError("the workers did not start")
                time.sleep(0.1)
            _insert_runs(dsn, 50 * workers)
            _wait_completed(dsn, 50 * workers, 60)
            before = drain.received
            _insert_runs(dsn, runs)
            elapsed = _wait_completed(dsn, 50 * workers + runs, 300)
            return runs / elapsed, drain.received - before
        finally:
            _stop_workers(processes)
            drain.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="Timed runs per measurement.")
    parser.add_argument("--concurrency", type=int, default=4, help="Slots of each worker.")
    parser.add_argument(
        "--repeat", type=int, default=3, help="Measurements per configuration (median shown)."
    )
    args = parser.parse_args(argv)

    postgres = BenchPostgres(os.environ.get("ZAPJOBS_BENCH_DSN") or None)
    postgres.start()
    rates: dict[tuple[int, bool], list[float]] = {}
    notifications: dict[tuple[int, bool], int] = {}
    load_before = load_average()
    try:
        # Interleaved, so that a change of load on the machine hits every configuration.
        for _ in range(args.repeat):
            for workers in (1, 4):
                for notify in (True, False):
                    rate, notes = measure(
                        postgres,
                        workers=workers,
                        notify=notify,
                        runs=args.runs,
                        concurrency=args.concurrency,
                    )
                    rates.setdefault((workers, notify), []).append(rate)
                    notifications[workers, notify] = notes
    finally:
        postgres.stop()

    median = {key: statistics.median(values) for key, values in rates.items()}
    print(f"PostgreSQL {postgres.version}; {os.cpu_count()} CPU ({cpu_model()})")
    print(f"load average before: {load_before}; after: {load_average()}")
    print(
        f"{args.runs} no-op runs per measurement, {args.repeat} measurements each; "
        f"--concurrency {args.concurrency} per worker"
    )
    print()
    print("workers  triggers  runs/s (median)  min-max      notifications/run")
    for key, values in rates.items():
        workers, notify = key
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(
            f"{workers:>7}  {'on' if notify else 'off':>8}  {median[key]:>15.0f}  {spread:<11}"
            f"  {notifications[key] / args.runs:>17.2f}"
        )
    print()
    for workers in (1, 4):
        on, off = median[workers, True], median[workers, False]
        print(f"{workers} worker(s): with triggers / without = {on / off:.2f}")
    for notify in (True, False):
        one, four = median[1, notify], median[4, notify]
        print(f"triggers {'on' if notify else 'off'}: 4 workers / 1 worker = {four / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
