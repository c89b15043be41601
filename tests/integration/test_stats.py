"""StatsUpdated: computed once for everybody, coalesced, and honest about estimates."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.support import Writer, sse_connect


@pytest.mark.parametrize("server_settings", [{"stats_interval": 0.5}])
async def test_a_burst_of_changes_gives_a_few_stats_updates_with_the_final_numbers(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=stats")) as client:
        await client.wait_named("StatsUpdated")
        started = time.monotonic()
        # 2,000 commits, one run each: 2,000 notifications.
        for _ in range(2000):
            await writer.insert_run()
        burst = time.monotonic() - started
        await client.wait_for(
            lambda es: any(e.json()["totalRuns"] == 2000 for e in es if e.name == "StatsUpdated"),
            timeout=5,
        )
        await asyncio.sleep(0.7)
        updates = client.named("StatsUpdated")[1:]
    # At most one per interval while the burst lasted, plus the final one.
    assert len(updates) <= burst / 0.5 + 3, f"{len(updates)} updates for a {burst:.1f} s burst"
    final = updates[-1].json()
    assert final["totalRuns"] == 2000 and final["pendingRuns"] == 2000
    assert final["estimated"] == []


@pytest.mark.parametrize("server_settings", [{"stats_exact_limit": 100}])
async def test_large_tables_report_estimated_totals_and_say_so(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status)"
        " SELECT gen_random_uuid(), 'bulk', 3 FROM generate_series(1, 500)"
    )
    await writer.execute("ANALYZE zapjobs.runs")
    await asyncio.sleep(1.5)  # the statistics collector publishes its counts
    async with sse_connect(http, server.path("events?topics=stats")) as client:
        await writer.insert_run()
        events = await client.wait_for(
            lambda es: any(
                "totalRuns" in e.json()["estimated"] and e.json()["pendingRuns"] == 1
                for e in es
                if e.name == "StatsUpdated"
            ),
            timeout=15,
        )
    stats = [e.json() for e in events if e.name == "StatsUpdated"][-1]
    assert stats["estimated"] == ["totalRuns"]
    assert stats["totalRuns"] >= 400
    assert stats["pendingRuns"] == 1  # counted exactly, from the status index
