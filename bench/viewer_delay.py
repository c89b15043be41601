"""Scenario 7: how long after a commit a viewer sees it: a `curl -N` stream against polling.

The server runs in its own process. A writer updates one run's progress at random
moments; for every update it takes the time just before it sends COMMIT. Beside it, in
their own threads, a real `curl -N` on the stream (`events?topics=runs`) and a polling
dashboard (the JSON API's overview every 5 s, bench/polling.py). A viewer's delay for an
update is the time from just before its COMMIT to the moment that viewer first has it:
the line with its `progress` read from curl's output, or the runs response of the first
refresh that shows it (or a later value) read by the poller. Where the server's
wal_level allows it, a second server reads the same commits with `--feed wal`, watched by a
second curl.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .polling import POLL_INTERVAL, poll_overview
from .postgres import BenchPostgres, connect, seed_runs, seed_workers
from .report import ScenarioResult
from .servers import running_server

__all__ = ["run"]

PROGRESS = re.compile(rb'"progress":(\d+)')
PAUSE = (0.1, 0.6)  # seconds between updates, uniformly drawn: commits fall at any phase


class FirstSeen:
    """When a viewer first had each progress value (a later value implies the earlier)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: dict[int, float] = {}
        self._highest = 0

    def saw(self, progress: int, at: float) -> None:
        with self._lock:
            for value in range(self._highest + 1, progress + 1):
                self.times[value] = at
            self._highest = max(self._highest, progress)

    @property
    def highest(self) -> int:
        return self._highest


def _read_curl(curl: subprocess.Popen[bytes], seen: FirstSeen) -> None:
    assert curl.stdout is not None
    for line in iter(curl.stdout.readline, b""):
        match = PROGRESS.search(line)
        if match:
            seen.saw(int(match[1]), time.time())


@contextmanager
def _curl(base_url: str, seen: FirstSeen) -> Iterator[subprocess.Popen[bytes]]:
    """`curl -N` on the stream, each progress it prints noted with its arrival time."""
    curl = subprocess.Popen(
        ["curl", "-sN", f"{base_url}/zapjobs/events?topics=runs"], stdout=subprocess.PIPE
    )
    reader = threading.Thread(target=_read_curl, args=(curl, seen), daemon=True)
    reader.start()
    try:
        yield curl
    finally:
        curl.terminate()
        curl.wait(5)
        reader.join(5)


def _poll(base_url: str, run_id: str, seconds: float, seen: FirstSeen) -> None:
    def on_runs(runs: list[dict[str, Any]], at: float) -> None:
        for run in runs:
            if run["id"] == run_id:
                seen.saw(int(run["progress"]), at)

    # A dashboard opened at any moment: its refreshes fall anywhere relative to commits.
    phase = random.uniform(0, POLL_INTERVAL)
    asyncio.run(poll_overview(base_url, 1, seconds, phase=phase, on_runs=on_runs))


def _write(dsn: str, run_id: str, seconds: float) -> list[float]:
    """Progress 1, 2, ... at random moments; each one's time just before COMMIT is sent."""
    connection = connect(dsn, "zapjobs_bench_writer")
    connection.autocommit = False
    before_commit: list[float] = []
    stop_at = time.monotonic() + seconds
    try:
        with connection.cursor() as cursor:
            while time.monotonic() < stop_at:
                time.sleep(random.uniform(*PAUSE))
                cursor.execute(
                    "UPDATE zapjobs.runs SET progress = %s WHERE id = %s",
                    (len(before_commit) + 1, run_id),
                )
                before_commit.append(time.time())
                connection.commit()
    finally:
        connection.close()
    return before_commit


def _delays(before_commit: list[float], seen: FirstSeen) -> np.ndarray:
    return np.array(
        [seen.times[n + 1] - at for n, at in enumerate(before_commit) if n + 1 in seen.times]
    )


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        7,
        "Commit-to-viewer delay: a stream against a polling dashboard",
        ["viewer", "updates seen", "median ms", "p90 ms", "worst ms"],
    )
    seconds = 6.0 if quick else 60.0
    stream, wal_stream, polled = FirstSeen(), FirstSeen(), FirstSeen()
    before_commit: list[float] = []
    with postgres.database("delay") as dsn:
        run_id = seed_runs(dsn, 1)[0]
        seed_workers(dsn, 3)
        wal = str(postgres.query("SHOW wal_level")[0][0]) == "logical"
        with contextlib.ExitStack() as servers:
            server = servers.enter_context(running_server("zapjobs-sse", dsn))
            base_url = f"http://127.0.0.1:{server.port}"
            curls = [servers.enter_context(_curl(base_url, stream))]
            if wal:  # the same commits, through the other feed
                wal_server = servers.enter_context(running_server("zapjobs-sse-wal", dsn))
                curls.append(
                    servers.enter_context(_curl(f"http://127.0.0.1:{wal_server.port}", wal_stream))
                )
            # The poller runs past the writes by one interval, to see the last of them.
            poller = threading.Thread(
                target=_poll, args=(base_url, run_id, seconds + POLL_INTERVAL + 1, polled)
            )
            time.sleep(0.5)
            poller.start()
            before_commit = _write(dsn, run_id, seconds)
            poller.join(POLL_INTERVAL * 3 + seconds)
    delays = {
        "`curl -N` on the stream (`events?topics=runs`), --feed notify": _delays(
            before_commit, stream
        ),
        "`curl -N` on the stream, --feed wal": _delays(before_commit, wal_stream),
        f"polling: stats, runs, workers every {POLL_INTERVAL:g} s (JSON API)": _delays(
            before_commit, polled
        ),
    }
    if not wal:
        del delays["`curl -N` on the stream, --feed wal"]
    for viewer, seen in delays.items():
        cells = ["-", "-", "-"]
        if len(seen):
            median, p90 = np.percentile(seen, [50, 90])
            cells = [f"{median * 1000:.1f}", f"{p90 * 1000:.1f}", f"{seen.max() * 1000:.1f}"]
        result.rows.append([viewer, f"{len(seen)} of {len(before_commit)}", *cells])
    result.notes += [
        f"One writer updates one run's progress {len(before_commit)} times over {seconds:g} s,"
        f" {PAUSE[0]:g}-{PAUSE[1]:g} s apart at random; delay = from just before its COMMIT is"
        " sent (time.time() in the writer) to the moment the viewer has it: for curl, the"
        " line carrying that progress read from curl's output; for the poller, the runs"
        " response of the first refresh showing it (or a later value), read in full. The"
        " server, curl and the poller are separate from the writer: the server in its own"
        " process, curl a subprocess, the poller a thread of the benchmark with its own"
        " event loop and connection.",
        f"The polling dashboard opens at a random moment; it refreshes every"
        f" {POLL_INTERVAL:g} s, each refresh the three requests one after the other.",
    ]
    streamed, *_, polled_delays = delays.values()
    if len(streamed) and len(polled_delays):
        ratio = float(np.median(polled_delays) / np.median(streamed))
        result.notes.append(f"Median delay, polling / stream: {ratio:,.0f}x.")
    return result
