"""Polling dashboards: viewers that reload the overview from the JSON API every 5 s.

Each refresh loads what the ZapJobs dashboard's overview shows, one request after the
other on the viewer's own keep-alive connection: the stats, the 20 most recent runs and
the workers. Refreshes follow a fixed schedule (a browser's setInterval), and viewers
start spread evenly over one interval, so the load is steady from the start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

__all__ = ["OVERVIEW", "POLL_INTERVAL", "RunsSeen", "poll_overview"]

POLL_INTERVAL = 5.0
API = "/zapjobs/api"
OVERVIEW = (f"{API}/stats", f"{API}/runs?limit=20", f"{API}/workers")

# Called with the runs of each refresh and the time their response was read.
RunsSeen = Callable[[list[dict[str, Any]], float], None]


async def _viewer(
    base_url: str, first_refresh: float, stop_at: float, on_runs: RunsSeen | None
) -> int:
    """Refreshes until `stop_at` (time.monotonic); returns how many it made."""
    refreshes = 0
    async with aiohttp.ClientSession(base_url) as session:
        await asyncio.sleep(max(0.0, first_refresh - time.monotonic()))
        while time.monotonic() < stop_at:
            for path in OVERVIEW:
                async with session.get(path) as response:
                    response.raise_for_status()
                    body = await response.json()
                if on_runs is not None and "runs" in body:
                    on_runs(body["runs"], time.time())
            refreshes += 1
            next_refresh = first_refresh + refreshes * POLL_INTERVAL
            await asyncio.sleep(max(0.0, next_refresh - time.monotonic()))
    return refreshes


async def poll_overview(
    base_url: str,
    viewers: int,
    seconds: float,
    *,
    phase: float = 0.0,
    on_runs: RunsSeen | None = None,
) -> int:
    """`viewers` polling dashboards for `seconds`; returns the refreshes made in all.

    Viewer i first refreshes at `phase + POLL_INTERVAL * i / viewers` seconds from now.
    """
    began = time.monotonic()
    refreshes = await asyncio.gather(
        *(
            _viewer(
                base_url,
                began + phase + POLL_INTERVAL * index / viewers,
                began + seconds,
                on_runs,
            )
            for index in range(viewers)
        )
    )
    return sum(refreshes)
