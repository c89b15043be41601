"""Scenario 5: executor transactions per second with the notification triggers and without."""

from __future__ import annotations

import multiprocessing
import select
import statistics
import threading
import time
from typing import Any

from .postgres import BenchPostgres, connect, drop_notify_triggers, seed_runs
from .report import Ratio, ScenarioResult, Target

__all__ = ["run"]


def _executor(dsn: str, run_ids: list[str], start_at: float, stop_at: float, out: Any) -> None:
    """Status updates and 10-line log batches, alternately, one transaction each."""
    connection = connect(dsn, "zapjobs_bench_executor")
    done = 0
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = on")
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            run_id = run_ids[done % len(run_ids)]
            if done % 2:
                cursor.execute(
                    "INSERT INTO zapjobs.logs (id, run_id, level, message, timestamp)"
                    " SELECT gen_random_uuid(), %s, 2, 'processed item ' || n,"
                    " clock_timestamp() AT TIME ZONE 'utc' FROM generate_series(1, 10) n",
                    (run_id,),
                )
            else:
                cursor.execute(
                    "UPDATE zapjobs.runs SET status = 2, progress = progress + 1,"
                    " items_processed = items_processed + 10 WHERE id = %s",
                    (run_id,),
                )
            done += 1
    connection.close()
    out.send(done)


class Listening(threading.Thread):
    """A LISTEN session draining the notifications, as the server's bridge does."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self._connection = connect(dsn, "zapjobs_bench_listener")
        with self._connection.cursor() as cursor:
            cursor.execute("LISTEN zapjobs_sse")
        self._stopping = threading.Event()
        self.received = 0

    def run(self) -> None:
        while not self._stopping.is_set():
            if select.select([self._connection], [], [], 0.2)[0]:
                self._connection.poll()
                self.received += len(self._connection.notifies)
                self._connection.notifies.clear()

    def stop(self) -> None:
        self._stopping.set()
        self.join(2)
        self._connection.close()


def measure(dsn: str, runs: list[list[str]], writers: int, seconds: float) -> float:
    context = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5
    pipes, processes = [], []
    for index in range(writers):
        parent, child = context.Pipe()
        process = context.Process(
            target=_executor, args=(dsn, runs[index], start_at, start_at + seconds, child)
        )
        process.start()
        pipes.append(parent)
        processes.append(process)
    total = sum(int(pipe.recv()) for pipe in pipes)
    for process in processes:
        process.join(5)
    return total / seconds


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        5,
        "Writer overhead of the notification triggers",
        ["writers", "tx/s with triggers", "tx/s without", "ratio"],
    )
    seconds, repeats = (1.5, 1) if quick else (6.0, 3)
    rates: dict[tuple[int, bool], list[float]] = {}
    with (
        postgres.database("writers_on") as with_triggers,
        postgres.database("writers_off") as without,
    ):
        drop_notify_triggers(without)
        runs: dict[str, list[list[str]]] = {}
        for dsn in (with_triggers, without):
            ids = seed_runs(dsn, 4 * 50)
            runs[dsn] = [ids[index * 50 : (index + 1) * 50] for index in range(4)]
        listener = Listening(with_triggers)
        listener.start()
        try:
            for _ in range(repeats):
                for writers in (1, 4):
                    for triggers in (True, False):
                        dsn = with_triggers if triggers else without
                        rate = measure(dsn, runs[dsn], writers, seconds)
                        rates.setdefault((writers, triggers), []).append(rate)
        finally:
            listener.stop()
    for writers in (1, 4):
        on = statistics.median(rates[(writers, True)])
        off = statistics.median(rates[(writers, False)])
        ratio = on / off
        result.rows.append([str(writers), f"{on:.0f}", f"{off:.0f}", f"{ratio:.2f}"])
        result.targets.append(
            Target.of_ratio(
                f">= 0.90 of the transaction rate without triggers, {writers} writer(s)",
                f"{on:.0f} vs {off:.0f} tx/s = {ratio:.2f}",
                Ratio(
                    ratio,
                    0.90,
                    known_limit=None
                    if writers == 1
                    else "NOTIFY serializes the commits of notifying writers; --feed wal"
                    " costs the writers no lock",
                ),
            )
        )
    result.notes += [
        "Each writer is a process with its own connection (autocommit, synchronous_commit on)"
        " alternating an executor's two commonest transactions: a run status/progress"
        " UPDATE and a 10-line log INSERT; each works on its own 50 runs.",
        "With triggers, a LISTEN session drains the notifications as the server would;"
        " without, the sse_* triggers are dropped from a copy of the database.",
        f"{seconds:g} s per measurement; with and without alternate; median of {repeats}.",
    ]
    return result
