"""Worker states: the server notices a silent worker itself, and its return."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.support import SSEEvent, Writer, sse_connect

pytestmark = pytest.mark.parametrize("server_settings", [{"worker_stale_after": 1.5}])

BEAT = (
    "INSERT INTO zapjobs.heartbeats (worker_id, hostname, process_id, timestamp)"
    " VALUES ('w-1', 'host', 7, now() AT TIME ZONE 'utc')"
    " ON CONFLICT (worker_id) DO UPDATE SET timestamp = EXCLUDED.timestamp"
)


def states(events: list[SSEEvent]) -> list[str]:
    """The worker's successive states (a repeated heartbeat repeats nothing here)."""
    seen: list[str] = []
    for event in events:
        if event.name == "WorkerUpdated" and event.json()["state"] not in seen[-1:]:
            seen.append(event.json()["state"])
    return seen


async def test_silent_worker_turns_stale_then_active_again(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=workers")) as client:
        await writer.execute(BEAT)
        await client.wait_for(lambda es: states(es) == ["active"])
        silent_since = time.monotonic()
        await client.wait_for(lambda es: states(es) == ["active", "stale"], timeout=5)
        noticed_after = time.monotonic() - silent_since
        assert 1.0 < noticed_after < 6.0
        await writer.execute(BEAT)
        await client.wait_for(lambda es: states(es) == ["active", "stale", "active"])


async def test_shutting_down_and_removed_workers_are_stopped(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=workers")) as client:
        await writer.execute(BEAT)
        await client.wait_for(lambda es: states(es) == ["active"])
        await writer.execute("UPDATE zapjobs.heartbeats SET is_shutting_down = true")
        await client.wait_for(lambda es: states(es) == ["active", "stopped"])
        await writer.execute("DELETE FROM zapjobs.heartbeats")
        await client.wait_for(
            lambda es: (
                [e.json()["state"] for e in es if e.name == "WorkerUpdated"][-2:]
                == ["stopped", "stopped"]
            )
        )
