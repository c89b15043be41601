"""Scenario 2: many idle streams kept open by heartbeats: memory and CPU per connection."""

from __future__ import annotations

import time

from .client import ClientPool
from .hubs import EVENTS_PATH
from .postgres import BenchPostgres
from .report import ScenarioResult, Target
from .servers import running_server

__all__ = ["run"]

TARGET_CONNECTIONS = 10_000
DEFAULT_HEARTBEAT = 15.0
SYSTEMS = ("zapjobs-sse", "aiohttp-sse", "aiohttp-bare")  # quick mode included


def run(postgres: BenchPostgres, quick: bool) -> ScenarioResult:
    result = ScenarioResult(
        2,
        "Idle streams with heartbeats",
        [
            "system",
            "streams",
            "heartbeat s",
            "RSS delta / stream",
            "window s",
            "heartbeats",
            "CPU (share of a core)",
            "CPU us / heartbeat",
            f"CPU at {TARGET_CONNECTIONS:,} streams / {DEFAULT_HEARTBEAT:.0f} s",
        ],
    )
    if quick:
        streams, heartbeat, window = 1000, 1.0, 2.0
    else:
        streams, heartbeat, window = TARGET_CONNECTIONS, DEFAULT_HEARTBEAT, 2 * DEFAULT_HEARTBEAT
    per_stream: dict[str, float] = {}
    projected: dict[str, float] = {}
    with postgres.database("idle") as dsn:
        for system in SYSTEMS:
            with running_server(system, dsn, heartbeat=heartbeat) as server:
                with ClientPool("127.0.0.1", server.port, EVENTS_PATH, 1, processes=1) as warm:
                    warm.connect()
                    time.sleep(0.5)
                    rss_before = server.rss()
                with ClientPool(
                    "127.0.0.1", server.port, EVENTS_PATH, streams, processes=2
                ) as pool:
                    opened = pool.connect()
                    time.sleep(heartbeat + 1)  # every stream past its first heartbeat
                    rss_after = server.rss()
                    pool.record()
                    cpu_before = server.cpu_seconds()
                    time.sleep(window)
                    cpu = server.cpu_seconds() - cpu_before
                    collected = pool.collect()
            beats = max(collected.comments, 1)
            per_stream[system] = (rss_after - rss_before) / max(opened, 1)
            cost = cpu / beats
            projected[system] = cost * TARGET_CONNECTIONS / DEFAULT_HEARTBEAT
            result.rows.append(
                [
                    system,
                    f"{opened:,}",
                    f"{heartbeat:g}",
                    f"{per_stream[system] / 1024:.1f} KB",
                    f"{window:g}",
                    f"{collected.comments:,}",
                    f"{cpu / window:.1%}",
                    f"{cost * 1e6:.0f}",
                    f"{projected[system]:.1%}",
                ]
            )
    ours = per_stream["zapjobs-sse"]
    result.targets += [
        Target(
            "<= 10 KB of server memory per idle stream",
            f"{ours / 1024:.1f} KB (bare aiohttp stream:"
            f" {per_stream['aiohttp-bare'] / 1024:.1f} KB,"
            f" aiohttp-sse: {per_stream['aiohttp-sse'] / 1024:.1f} KB)",
            ours <= 10 * 1024,
        ),
        Target(
            f"heartbeat CPU < 5% of a core ({TARGET_CONNECTIONS:,} streams,"
            f" {DEFAULT_HEARTBEAT:g} s heartbeat)",
            f"{projected['zapjobs-sse']:.2%}",
            projected["zapjobs-sse"] < 0.05,
        ),
    ]
    result.notes += [
        "Each server runs in its own process; memory = RSS after the streams opened (and sent"
        " a first heartbeat) minus RSS with one stream, divided by the streams.",
        "CPU = the server process's user+system time over the window, with only heartbeats"
        " flowing; the last column scales the measured cost per heartbeat to"
        f" {TARGET_CONNECTIONS:,} streams every {DEFAULT_HEARTBEAT:g} s.",
        "aiohttp-sse is the straightforward hub (a bare aiohttp-sse stream with its own ping)"
        " for reference; aiohttp-bare is the floor of any aiohttp server: a plain"
        " StreamResponse that only sends heartbeats.",
    ]
    if quick:
        result.notes.append(
            f"Quick mode: {streams:,} streams and a {heartbeat:g} s heartbeat; the CPU target is"
            " judged on the scaled cost per heartbeat."
        )
    return result
