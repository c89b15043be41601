"""Scenario 1: fan-out of run updates to many subscribers of the global stream.

Each system's limit is searched: the highest rate of run updates at which every
subscriber receives every event (no loss) with p99 commit-to-client delay <= 250 ms.
The rate grows by a factor while every step passes (or shrinks while every step fails),
then the last passing and the first failing rates are bisected, within a bound on steps
and on time. The writer is never the bottleneck: each commit carries every event due
when it starts, so a slow commit makes the next one bigger rather than the rate lower.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .client import ClientPool
from .hubs import EVENTS_PATH, KINDS, nchan_missing
from .postgres import BenchPostgres, connect, seed_runs
from .report import Plot, Ratio, ScenarioResult, Table, Target
from .servers import RunningServer, running_server

__all__ = ["SearchPlan", "Step", "commit_delays", "run", "search_limit"]

P99_LIMIT = 0.250
RETRY_BELOW = 3 * P99_LIMIT  # a failed step's p99 below this may be noise: try again
RATIO_GOAL = 3.0  # the target over each Python baseline, at 1,000 subscribers
TARGET_SUBSCRIBERS, TARGET_RATE = 5000, 20.0  # the target: p99 <= 250 ms there
RUNS = 20_000  # distinct runs: one commit never updates a run twice, nor do close commits
TIMED_STREAMS = 100  # streams that time every event; the others count theirs
QUIET = 0.5  # no delivery for this long: whatever was still coming has come
ARRIVAL_LIMIT = 3.0  # a delivery not arrived this long after the last commit is missing
SETTLE_LIMIT = 10.0  # after a failed step, the most we wait for the backlog to drain
MIN_EVENTS = 3  # a step at a low rate writes for longer


@dataclass(frozen=True)
class SearchPlan:
    """How a limit is searched."""

    growth: float  # factor between rates until a step passes and another fails
    precision: float  # stop when the first failing rate / the last passing one is below this
    max_steps: int
    max_seconds: float
    step_seconds: float  # how long each step writes
    retries: int = 0  # a rate that failed on delay alone, and narrowly, is tried again
    floor: float = 1.0  # the lowest rate tried


QUICK_PLAN = SearchPlan(
    growth=3.0, precision=2.0, max_steps=6, max_seconds=15.0, step_seconds=1.0, retries=1
)
FULL_PLAN = SearchPlan(
    growth=2.0, precision=1.15, max_steps=14, max_seconds=180.0, step_seconds=4.0, retries=1
)
SUBSCRIBERS = (1000, TARGET_SUBSCRIBERS)


def first_rate(subscribers: int, plan: SearchPlan) -> float:
    """Where a search starts: the same for every system; low (the Python baselines passed
    20 events/s at 1,000 subscribers in the full run of 2026-11-28), so that a failed step
    seldom overloads a server by more than one growth factor and its backlog drains
    quickly; at 5,000 subscribers, two growth steps below the target's rate, which a
    search that passes them then measures."""
    return TARGET_RATE / plan.growth**2 if subscribers == TARGET_SUBSCRIBERS else 20.0


@dataclass
class Step:
    system: str
    subscribers: int
    offered: float  # events per second asked of the writer
    committed: float  # events per second the writer committed
    per_commit: float  # events per commit, on average
    deliveries_per_second: float
    p50: float
    p99: float
    missing: float  # share of expected deliveries that did not arrive
    server_cpu: float  # the server's CPU (with its children) over the step, share of a core
    closed: int  # streams the server ended during the step

    @property
    def passed(self) -> bool:
        return self.missing == 0 and self.p99 <= P99_LIMIT


class RateWriter:
    """Commits run updates at a given rate; remembers each event's commit time."""

    def __init__(self, dsn: str, run_ids: list[str]) -> None:
        self._connection = connect(dsn, "zapjobs_bench_writer")
        self._run_ids = run_ids
        self.next_key = 1

    def run(self, rate: float, duration: float) -> tuple[int, np.ndarray, float, float]:
        """Write for `duration` seconds: (first key, commit times, events/s, events/commit).

        One UPDATE per commit (autocommit) of every event due by then; each event is one
        run row, so one notification. Its time is when its COMMIT returned.
        """
        first = self.next_key
        total = max(MIN_EVENTS, int(rate * duration))
        commits = np.zeros(total)
        statements = 0
        started = time.monotonic()
        with self._connection.cursor() as cursor:
            sent = 0
            while sent < total:
                due = min(total, int((time.monotonic() - started) * rate) + 1)
                if due <= sent:
                    time.sleep(max(0.0, started + sent / rate - time.monotonic()))
                    continue
                keys = list(range(self.next_key, self.next_key + due - sent))
                cursor.execute(
                    "UPDATE zapjobs.runs AS r SET status = 2 + e.key %% 2, progress = e.key"
                    " FROM unnest(%s::uuid[], %s::int[]) AS e(id, key) WHERE r.id = e.id",
                    ([self._run_ids[key % len(self._run_ids)] for key in keys], keys),
                )
                commits[sent:due] = time.time()
                statements += 1
                self.next_key += due - sent
                sent = due
        # On schedule, the last commit comes (total - 1) / rate after the start.
        committed = total / (time.monotonic() - started + 1 / rate)
        return first, commits, committed, total / statements

    def close(self) -> None:
        self._connection.close()


def commit_delays(
    keys: np.ndarray, times: np.ndarray, first: int, commits: np.ndarray
) -> np.ndarray:
    """Arrival time minus commit time of every delivery whose key was committed in this step."""
    index = keys - first
    valid = (index >= 0) & (index < len(commits))
    return np.asarray(times[valid] - commits[index[valid]])


def _wait_for_deliveries(pool: ClientPool, expected: int | None, limit: float) -> bool:
    """Until `expected` deliveries arrived or none arrived for QUIET seconds (True), or
    `limit` seconds passed (False)."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        delivered = pool.delivered()
        if expected is not None and delivered >= expected:
            return True
        if delivered != last:
            last, last_change = delivered, time.monotonic()
        elif time.monotonic() - last_change >= QUIET:
            return True
        time.sleep(0.05)
    return False


class Probe:
    """One system's subscribers at one count: measures a step at a given rate."""

    def __init__(
        self,
        server: RunningServer,
        writer: RateWriter,
        subscribers: int,
        duration: float,
        notes: list[str],
    ) -> None:
        self._server = server
        self._writer = writer
        self._wanted = subscribers
        self._duration = duration
        self._notes = notes
        self._pool = self._open()

    def _open(self) -> ClientPool:
        pool = ClientPool(
            "127.0.0.1",
            self._server.port,
            EVENTS_PATH,
            self._wanted,
            processes=2,
            timed_every=max(1, self._wanted // TIMED_STREAMS),
        )
        self.subscribers = pool.connect()
        if self.subscribers < self._wanted:
            self._notes.append(
                f"{self._server.kind}: only {self.subscribers:,} of {self._wanted:,} streams opened"
            )
        time.sleep(0.5)
        return pool

    def __call__(self, rate: float) -> Step:
        pool = self._pool
        pool.record()
        cpu_before, began = self._server.cpu_seconds(), time.monotonic()
        first, commits, committed, per_commit = self._writer.run(rate, self._duration)
        expected = len(commits) * self.subscribers
        _wait_for_deliveries(pool, expected, limit=ARRIVAL_LIMIT)
        cpu = (self._server.cpu_seconds() - cpu_before) / (time.monotonic() - began)
        collected = pool.collect()
        keys = np.frombuffer(collected.keys, dtype=np.int64)
        times = np.frombuffer(collected.times, dtype=np.float64)
        delays = commit_delays(keys, times, first, commits)
        short = sum(max(0, len(commits) - count) for count in collected.per_connection)
        missing = short / expected if expected else 1.0
        if len(delays):
            p50, p99 = (float(value) for value in np.percentile(delays, [50, 99]))
            span = max(float(times.max() - commits[0]), 1e-9)
        else:
            p50 = p99 = math.inf
            span = self._duration
        step = Step(
            self._server.kind,
            self.subscribers,
            rate,
            committed,
            per_commit,
            (expected - short) / span,
            p50,
            p99,
            missing,
            cpu,
            collected.closed,
        )
        settled = True
        if not step.passed:
            pool.record()  # let the backlog of an overloaded server drain
            settled = _wait_for_deliveries(pool, None, SETTLE_LIMIT)
        if step.closed or not settled:  # new streams, and the server drops the backlog
            pool.close()
            self._pool = self._open()
        return step

    def close(self) -> None:
        self._pool.close()


def search_limit(probe: Callable[[float], Step], start: float, plan: SearchPlan) -> list[Step]:
    """The steps of one search; the limit is the highest offered rate of a passing step."""
    steps: list[Step] = []
    passed: float | None = None  # highest passing rate
    failed: float | None = None  # lowest failing rate
    rate = start
    deadline = time.monotonic() + plan.max_seconds
    while len(steps) < plan.max_steps and time.monotonic() < deadline:
        for _ in range(1 + plan.retries):
            step = probe(rate)
            steps.append(step)
            # A lost delivery is not noise, nor is a p99 of seconds (overload); a p99 just
            # over the limit may be: a stall caused by other work on the machine.
            if step.passed or step.missing > 0 or step.p99 > RETRY_BELOW:
                break
        if step.passed:
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if failed is None:
            rate *= plan.growth
        elif passed is None:
            rate /= plan.growth
            if rate < plan.floor:
                break
        elif failed / passed <= plan.precision:
            break
        else:
            rate = math.sqrt(passed * failed)
    return steps


def limit_of(steps: list[Step], system: str, subscribers: int) -> Step | None:
    """The passing step of the highest rate, if any."""
    passing = [s for s in steps if s.system == system and s.subscribers == subscribers]
    passing = [s for s in passing if s.passed]
    return max(passing, key=lambda s: s.offered, default=None)


def _target_rate_at_5000(steps: list[Step]) -> Target:
    """The issue's absolute target: zapjobs-sse's step at 20 events/s, 5,000 subscribers
    (met when an attempt at that rate passed)."""
    text = (
        f"{TARGET_SUBSCRIBERS:,} subscribers at {TARGET_RATE:g} events/s with p99 <= 250 ms,"
        " no loss"
    )
    ours = [s for s in steps if s.system == "zapjobs-sse" and s.subscribers == TARGET_SUBSCRIBERS]
    attempts = [s for s in ours if math.isclose(s.offered, TARGET_RATE)]
    if attempts:
        step = max(attempts, key=lambda s: s.passed)
        tried = f" ({len(attempts)} attempts)" if len(attempts) > 1 else ""
        return Target(
            text, f"p99 {_ms(step.p99)} ms, missing {step.missing:.2%}{tried}", step.passed
        )
    passed = {s.offered for s in ours if s.passed}
    failed_below = [s.offered for s in ours if s.offered < TARGET_RATE and s.offered not in passed]
    if failed_below:
        return Target(text, f"failed already at {_events(failed_below[0])} events/s", False)
    return Target(text, "not measured", False)


def _events(rate: float) -> str:
    """An events/s rate: whole numbers from 10 up, two digits below (a search goes low)."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def _ms(seconds: float) -> str:
    return "-" if math.isinf(seconds) or math.isnan(seconds) else f"{seconds * 1000:.0f}"


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        1,
        "Fan-out of run updates on the global stream",
        [
            "system",
            "subscribers",
            "limit events/s",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "server CPU",
            "steps",
            "search s",
            "zapjobs-sse / system",
        ],
    )
    plan = QUICK_PLAN if quick else FULL_PLAN
    systems: tuple[str, ...] = KINDS
    if str(postgres.query("SHOW wal_level")[0][0]) == "logical":
        systems = (KINDS[0], "zapjobs-sse-wal", *KINDS[1:])  # both feeds of ours
    else:
        result.notes.append("zapjobs-sse --feed wal: not measured, wal_level is not logical.")
    missing_nchan = nchan_missing()
    if missing_nchan is None:
        systems = (*systems, "nchan")
    else:
        result.notes.append(f"nchan: not measured, {missing_nchan}.")
    steps: list[Step] = []
    searched: dict[tuple[str, int], float] = {}  # seconds each search took
    with postgres.database("fanout") as dsn:
        writer = RateWriter(dsn, seed_runs(dsn, RUNS))
        try:
            for system in systems:
                with running_server(system, dsn) as server:
                    for subscribers in SUBSCRIBERS:
                        probe = Probe(server, writer, subscribers, plan.step_seconds, result.notes)
                        try:
                            began = time.monotonic()
                            steps += search_limit(probe, first_rate(subscribers, plan), plan)
                            searched[(system, subscribers)] = time.monotonic() - began
                        finally:
                            probe.close()
        finally:
            writer.close()
    _report(result, steps, searched, plan)
    if quick:
        result.notes.append(
            "Quick mode: coarse searches and short steps; the limits and ratios are rough,"
            " and the run fails only below half a ratio target."
        )
    return result


def _report(
    result: ScenarioResult,
    steps: list[Step],
    searched: dict[tuple[str, int], float],
    plan: SearchPlan,
) -> None:
    systems = tuple(dict.fromkeys(system for system, _ in searched))
    limits = {(system, count): limit_of(steps, system, count) for system, count in searched}
    for (system, subscribers), limit in limits.items():
        ours = limits[("zapjobs-sse", subscribers)]
        count = sum(1 for s in steps if s.system == system and s.subscribers == subscribers)
        seconds = f"{searched[(system, subscribers)]:.0f}"
        if limit is None:
            result.rows.append(
                [system, f"{subscribers:,}", "none passed", *["-"] * 4, str(count), seconds, "-"]
            )
            continue
        compared = "-"
        if ours is not None and system != "zapjobs-sse":
            compared = f"{ours.deliveries_per_second / limit.deliveries_per_second:.1f}x"
        result.rows.append(
            [
                system,
                f"{limit.subscribers:,}",
                _events(limit.committed),
                f"{limit.deliveries_per_second:,.0f}",
                _ms(limit.p50),
                _ms(limit.p99),
                f"{limit.server_cpu:.0%}",
                str(count),
                seconds,
                compared,
            ]
        )
    result.tables.append(
        Table(
            "Every step of the searches, in the order run",
            [
                "system",
                "subscribers",
                "offered events/s",
                "committed events/s",
                "events/commit",
                "deliveries/s",
                "p50 ms",
                "p99 ms",
                "missing",
                "server CPU",
                "passed",
            ],
            [
                [
                    s.system,
                    f"{s.subscribers:,}",
                    _events(s.offered),
                    _events(s.committed),
                    f"{s.per_commit:.1f}",
                    f"{s.deliveries_per_second:,.0f}",
                    _ms(s.p50),
                    _ms(s.p99),
                    f"{s.missing:.2%}" + (f" ({s.closed} streams closed)" if s.closed else ""),
                    f"{s.server_cpu:.0%}",
                    "yes" if s.passed else "no",
                ]
                for s in steps
            ],
        )
    )
    ours = limits[("zapjobs-sse", 1000)]
    for baseline in ("aiohttp-sse", "sse-starlette"):
        theirs = limits[(baseline, 1000)]
        text = f">= 3x the deliveries/s of {baseline} at its limit, 1,000 subscribers"
        if ours is None:
            result.targets.append(Target(text, "zapjobs-sse passed no step", False))
        elif theirs is None:
            result.targets.append(
                Target.of_ratio(
                    text,
                    f"{ours.deliveries_per_second:,.0f}/s; {baseline} passed no step",
                    Ratio(math.inf, RATIO_GOAL),
                )
            )
        else:
            ratio = ours.deliveries_per_second / theirs.deliveries_per_second
            result.targets.append(
                Target.of_ratio(
                    text,
                    f"{ours.deliveries_per_second:,.0f}/s vs {theirs.deliveries_per_second:,.0f}/s"
                    f" = {ratio:.1f}x",
                    Ratio(ratio, RATIO_GOAL),
                )
            )
    result.targets.append(_target_rate_at_5000(steps))
    result.notes += [
        "Limit: the highest rate at which every subscriber received every event (no loss)"
        f" with p99 commit-to-client delay <= {P99_LIMIT * 1000:.0f} ms. Searched per system"
        " and subscriber count: from"
        f" {', '.join(f'{first_rate(n, plan):.3g}' for n in SUBSCRIBERS)} events/s"
        f" ({', '.join(f'{n:,}' for n in SUBSCRIBERS)} subscribers), x{plan.growth:g} per step"
        f" while every step passed (/{plan.growth:g} while every step failed), then bisected"
        f" (geometric mean) until the failing / passing rates are within {plan.precision:g}x; at"
        f" most {plan.max_steps} steps and {plan.max_seconds:g} s a search."
        + (
            f" A rate that failed on delay alone (no loss, p99 below {RETRY_BELOW * 1000:.0f}"
            f" ms) is tried {plan.retries} more time(s), every attempt in the steps table: a"
            " stall caused by other work on the machine only ever adds delay."
            if plan.retries
            else ""
        ),
        "The writer commits one `UPDATE zapjobs.runs ... FROM unnest(ids, keys)` (autocommit)"
        " of every event due when the commit starts: one run row, so one notification, per"
        f" event, each of a distinct run ({RUNS:,} runs in turn). So it keeps up with any rate"
        " the servers reach: compare the offered and committed rates, and events/commit, in"
        " the steps table. An event's time is when its COMMIT returned; clients match each"
        " JobRunUpdated to it by its `progress` value (unique per event).",
        f"Each step writes for {plan.step_seconds:g} s (at least {MIN_EVENTS} events), then"
        f" waits until every delivery arrived, or none arrived for {QUIET:g} s, or"
        f" {ARRIVAL_LIMIT:g} s passed: what has not arrived by then is missing (lost, or so"
        " late that the step fails anyway). After a failed step, the backlog drains (at most"
        f" {SETTLE_LIMIT:g} s, else the streams are opened anew). deliveries/s = deliveries /"
        " (last arrival - first commit).",
        f"Load generator: 2 processes of raw asyncio clients; {TIMED_STREAMS} streams spread"
        " over the connection order time every event (the p50 and p99 are theirs), the"
        " others count theirs, so that loss is checked on every stream and parsing does not"
        " make the clients the bottleneck. Server CPU: the server process (for nchan, nginx"
        " and its publisher) over the step, in shares of one core: near 100% the server is"
        " the limit; well below it, the 2 shared cores (clients, PostgreSQL) are.",
        "nchan (nginx 1 worker, libnginx-mod-nchan): a C reference. Its publisher listens to"
        " the same NOTIFY channel and reads the runs by id with the same code as the two"
        " Python baselines, then sends each JobRunUpdated as one message over one websocket"
        " to an `nchan_publisher` location; so every system pays the same database round"
        " trip, and nchan's figures are those of its fan-out.",
    ]
    for subscribers in SUBSCRIBERS:
        series = {
            system: [
                (s.deliveries_per_second, s.p99 * 1000)
                for s in steps
                if s.system == system and s.subscribers == subscribers and s.missing == 0
            ]
            for system in systems
        }
        result.plots.append(
            Plot(
                f"bench-fanout-{subscribers}.png",
                f"Fan-out, {subscribers:,} subscribers: p99 delay against load (loss-free steps)",
                "deliveries per second",
                "p99 commit-to-client delay (ms)",
                series,
                log_x=True,
            )
        )
