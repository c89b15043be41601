"""Scenario 1: fan-out of run updates to many subscribers of the global stream."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .client import ClientPool
from .hubs import EVENTS_PATH, KINDS
from .postgres import BenchPostgres, connect, seed_runs
from .report import Plot, ScenarioResult, Target
from .servers import running_server

__all__ = ["Step", "commit_delays", "run"]

P99_LIMIT = 0.250
SATURATED_P99 = 1.0  # beyond this the system is overloaded: stop raising the rate
MAX_MISSING = 0.01


@dataclass
class Step:
    system: str
    subscribers: int
    offered: float  # events per second the writer committed
    deliveries_per_second: float
    p50: float
    p99: float
    missing: float  # share of expected deliveries that did not arrive

    @property
    def within_limit(self) -> bool:
        return self.p99 <= P99_LIMIT and self.missing <= MAX_MISSING


class RateWriter:
    """Commits one run update per event at a given rate; remembers each commit's time."""

    def __init__(self, dsn: str, run_ids: list[str]) -> None:
        self._connection = connect(dsn, "zapjobs_bench_writer")
        self._run_ids = run_ids
        self.next_key = 1

    def run(self, rate: float, duration: float) -> tuple[int, np.ndarray, float]:
        """Write for `duration` seconds; returns (first key, commit times, achieved rate)."""
        first = self.next_key
        commits: list[float] = []
        started = time.monotonic()
        count = int(rate * duration)
        with self._connection.cursor() as cursor:
            for index in range(count):
                pause = started + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                key = self.next_key
                self.next_key += 1
                cursor.execute(
                    "UPDATE zapjobs.runs SET status = %s, progress = %s WHERE id = %s",
                    (2 + key % 2, key, self._run_ids[key % len(self._run_ids)]),
                )
                commits.append(time.time())
        elapsed = time.monotonic() - started
        return first, np.array(commits), count / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        self._connection.close()


def commit_delays(
    keys: np.ndarray, times: np.ndarray, first: int, commits: np.ndarray
) -> np.ndarray:
    """Arrival time minus commit time of every delivery whose key was committed in this step."""
    index = keys - first
    valid = (index >= 0) & (index < len(commits))
    return np.asarray(times[valid] - commits[index[valid]])


def measure(
    pool: ClientPool,
    writer: RateWriter,
    system: str,
    subscribers: int,
    rate: float,
    duration: float,
    drain: float,
) -> Step:
    pool.record()
    first, commits, achieved = writer.run(rate, duration)
    time.sleep(drain)
    collected = pool.collect()
    keys = np.frombuffer(collected.keys, dtype=np.int64)
    times = np.frombuffer(collected.times, dtype=np.float64)
    delays = commit_delays(keys, times, first, commits)
    expected = len(commits) * subscribers
    missing = max(0.0, 1 - len(delays) / expected) if expected else 1.0
    if len(delays):
        p50 = float(np.percentile(delays, 50))
        p99 = float(np.percentile(delays, 99)) if missing <= MAX_MISSING else math.inf
        span = float(times.max() - commits[0]) if len(times) else duration
    else:
        p50 = p99 = math.inf
        span = duration
    return Step(system, subscribers, achieved, len(delays) / max(span, 1e-9), p50, p99, missing)


def _ms(seconds: float) -> str:
    return "-" if math.isinf(seconds) or math.isnan(seconds) else f"{seconds * 1000:.0f}"


def best_within_limit(steps: list[Step], system: str, subscribers: int) -> float:
    passing = [
        s.deliveries_per_second
        for s in steps
        if s.system == system and s.subscribers == subscribers and s.within_limit
    ]
    return max(passing, default=0.0)


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        1,
        "Fan-out of run updates on the global stream",
        ["system", "subscribers", "events/s", "deliveries/s", "p50 ms", "p99 ms", "missing"],
    )
    if quick:
        plan = {1000: [10.0, 40.0, 160.0], 5000: [20.0]}
        duration, drain = 1.5, 1.0
    else:
        plan = {
            100: [10.0, 50.0, 200.0, 800.0],
            1000: [10.0, 20.0, 50.0, 100.0, 200.0, 400.0],
            5000: [10.0, 20.0, 50.0, 100.0],
        }
        duration, drain = 4.0, 1.5
    steps: list[Step] = []
    with postgres.database("fanout") as dsn:
        run_ids = seed_runs(dsn, 200)
        writer = RateWriter(dsn, run_ids)
        try:
            for system in KINDS:
                with running_server(system, dsn) as server:
                    for subscribers, rates in plan.items():
                        if quick and subscribers == 5000 and system != "zapjobs-sse":
                            continue
                        with ClientPool(
                            "127.0.0.1", server.port, EVENTS_PATH, subscribers, processes=2
                        ) as pool:
                            opened = pool.connect()
                            if opened < subscribers:
                                result.notes.append(
                                    f"{system}: only {opened} of {subscribers} streams opened"
                                )
                            time.sleep(0.5)
                            for rate in rates:
                                step = measure(pool, writer, system, opened, rate, duration, drain)
                                steps.append(step)
                                if step.p99 > SATURATED_P99 or step.missing > MAX_MISSING:
                                    break
        finally:
            writer.close()
    for step in steps:
        result.rows.append(
            [
                step.system,
                f"{step.subscribers:,}",
                f"{step.offered:.0f}",
                f"{step.deliveries_per_second:,.0f}",
                _ms(step.p50),
                _ms(step.p99),
                f"{step.missing:.1%}",
            ]
        )
    ours = best_within_limit(steps, "zapjobs-sse", 1000)
    for baseline in ("aiohttp-sse", "sse-starlette"):
        theirs = best_within_limit(steps, baseline, 1000)
        ratio = ours / theirs if theirs else (math.inf if ours else 0.0)
        result.targets.append(
            Target(
                f">= 3x the deliveries/s of {baseline} at p99 <= 250 ms, 1,000 subscribers",
                f"{ours:,.0f}/s vs {theirs:,.0f}/s = {ratio:.1f}x"
                if theirs
                else f"{ours:,.0f}/s; {baseline} met p99 <= 250 ms at none of its rates",
                ratio >= 3,
            )
        )
    at_target = [
        s for s in steps if s.system == "zapjobs-sse" and s.subscribers >= 5000 and s.offered >= 19
    ]
    first_ok = at_target[0] if at_target else None
    result.targets.append(
        Target(
            "5,000 subscribers at 20 events/s with p99 <= 250 ms",
            f"p99 {_ms(first_ok.p99)} ms, missing {first_ok.missing:.1%}" if first_ok else "-",
            bool(first_ok and first_ok.within_limit),
        )
    )
    result.notes += [
        "A writer commits one `UPDATE zapjobs.runs SET status, progress` per event (autocommit),"
        " records the time right after COMMIT returns, and the clients match each"
        " JobRunUpdated to it by its `progress` value (unique per event).",
        f"Each rate runs {duration} s, then {drain} s to drain; a system stops at the first"
        f" rate where p99 > {SATURATED_P99:.0f} s or more than {MAX_MISSING:.0%} of the"
        " deliveries are missing ('-' p99: too many missing).",
        "deliveries/s = frames delivered / (last arrival - first commit).",
    ]
    for subscribers in plan:
        series = {
            system: [
                (s.deliveries_per_second, s.p99 * 1000)
                for s in steps
                if s.system == system and s.subscribers == subscribers and not math.isinf(s.p99)
            ]
            for system in KINDS
        }
        result.plots.append(
            Plot(
                f"bench-fanout-{subscribers}.png",
                f"Fan-out, {subscribers:,} subscribers: p99 delay against load",
                "deliveries per second",
                "p99 commit-to-client delay (ms)",
                series,
                log_x=True,
            )
        )
    return result
