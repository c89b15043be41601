"""Resume and resync: after any disconnect a client ends up with exactly what the table holds."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import aiohttp
import pytest

from tests.conftest import BOTH_FEEDS, RunningServer
from tests.support import SSEClient, SSEEvent, Writer, sse_connect

pytestmark = BOTH_FEEDS

LINES = 10_000
DISCONNECTS = 100


@pytest.mark.parametrize("logs_after", [False, True], ids=["last-event-id", "and-logs-after"])
async def test_log_lines_survive_a_hundred_forced_disconnects(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer, logs_after: bool
) -> None:
    # last-event-id: the client reconnects to the same URL (all lines from the start) with
    # Last-Event-ID, as an EventSource does: lines arrive twice unless the server resumes
    # from the id, and are lost unless it replays exactly what the client missed.
    # and-logs-after: the dashboard's way, the cursor of its last line offered too.
    run_id = await writer.insert_run(status=2)
    received: list[tuple[str, str]] = []  # (id, message)
    last_event_id: str | None = None
    last_cursor = "0.00000000-0000-0000-0000-000000000000"
    resumed = resynced = 0

    async def write_lines() -> None:
        for start in range(0, LINES, 25):
            await writer.insert_logs(run_id, [f"line {i}" for i in range(start, start + 25)])
            await asyncio.sleep(0.002)

    def take(client: SSEClient) -> None:
        nonlocal last_event_id, last_cursor, resumed, resynced
        if client.named("resync"):
            resynced += 1
        elif last_event_id is not None:
            resumed += 1
        for event in client.named("LogAdded"):
            line = event.json()
            received.append((line["id"], line["message"]))
            last_cursor = line["cursor"]
        last_event_id = client.last_id or last_event_id

    async def connect_once(duration: float) -> None:
        # With both, the server resumes from Last-Event-ID when it can prove the replay
        # complete, and otherwise sends resync and replays from the cursor.
        start = last_cursor if logs_after else "0.00000000-0000-0000-0000-000000000000"
        url = server.path(f"events?run={run_id}&topics=&logs_after={start}")
        headers = {"Last-Event-ID": last_event_id} if last_event_id else None
        async with sse_connect(http, url, headers) as client:
            await asyncio.sleep(duration)
        take(client)

    writing = asyncio.create_task(write_lines())
    for _ in range(DISCONNECTS):
        await connect_once(random.uniform(0.005, 0.06))
    await writing
    for _ in range(20):  # then read on until the client has caught up (bounded)
        if len(received) >= LINES:
            break
        await connect_once(2.0)

    stored = await writer.execute(
        "SELECT id::text, message FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id",
        (run_id,),
    )
    assert len(stored) == LINES
    assert len(received) == len(set(received)), "a line arrived twice"
    assert received == stored
    assert resumed > DISCONNECTS / 2, f"only {resumed} of {DISCONNECTS} reconnects resumed"
    if not logs_after:
        assert resynced == 0  # every reconnect was replayed from the ring


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [
        ("deadbeef-3", "unknown_last_event_id"),  # another process's id
        ("garbage", "unknown_last_event_id"),
    ],
)
async def test_unknown_last_event_id_gets_resync_first(
    server: RunningServer, http: aiohttp.ClientSession, last_event_id: str, reason: str
) -> None:
    headers = {"Last-Event-ID": last_event_id}
    async with sse_connect(http, server.path("events"), headers) as client:
        await client.wait_named("StatsUpdated")
        assert client.events[0].name == "resync"
        assert client.events[0].json() == {"reason": reason}


@pytest.mark.parametrize("server_settings", [{"replay_events": 5}])
async def test_expired_last_event_id_gets_resync_and_a_fresh_id_resumes(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=runs")) as client:
        await writer.insert_run()
        await client.wait_named("JobRunUpdated")
    old_id = client.last_id
    assert old_id is not None
    async with sse_connect(http, server.path("events?topics=runs")) as watcher:
        for _ in range(10):  # more than the replay window holds
            await writer.insert_run()
        await watcher.wait_named("JobRunUpdated", 10)  # the server has published them
    async with sse_connect(http, server.path("events?topics=runs"), {"Last-Event-ID": old_id}) as c:
        await c.wait_named("resync")
        assert c.named("resync")[0].json() == {"reason": "replay_window_exceeded"}
    fresh_id = c.last_id
    assert fresh_id is not None
    missed = await writer.insert_run()
    async with sse_connect(
        http, server.path("events?topics=runs"), {"Last-Event-ID": fresh_id}
    ) as resumed:
        events = await resumed.wait_named("JobRunUpdated")
        assert [e.json()["id"] for e in events] == [missed]
        assert not resumed.named("resync")


async def test_resume_replays_exactly_the_missed_events(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=runs")) as client:
        first = await writer.insert_run()
        await client.wait_named("JobRunUpdated")
    async with sse_connect(http, server.path("events?topics=runs")) as watcher:
        missed = [await writer.insert_run() for _ in range(3)]
        await watcher.wait_named("JobRunUpdated", 3)
    headers = {"Last-Event-ID": client.last_id or ""}
    async with sse_connect(http, server.path("events?topics=runs"), headers) as resumed:
        events = await resumed.wait_named("JobRunUpdated", 3)
        assert [e.json()["id"] for e in events] == missed
        assert first not in [e.json()["id"] for e in events]
        assert not resumed.named("resync")


async def test_a_run_stream_resumes_from_its_first_run_event_with_the_lines_it_missed(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    # The run changes the moment the stream opens, so that its first RunDetailUpdated
    # is published while the stream is still starting: resuming from that event must
    # replay the lines committed meanwhile, not resync. Timing dependent: tried 8 times.
    for attempt in range(8):
        run_id = await writer.insert_run(status=0)
        url = server.path(f"events?run={run_id}&topics=")
        async with sse_connect(http, url) as client:
            await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (run_id,))
            await client.wait_named("RunDetailUpdated")
        last_id = client.named("RunDetailUpdated")[-1].id
        assert last_id is not None
        await writer.insert_logs(run_id, [f"missed {attempt}.{i}" for i in range(3)])
        await asyncio.sleep(0.5)
        async with sse_connect(http, url, {"Last-Event-ID": last_id}) as resumed:
            lines = await resumed.wait_named("LogAdded", 3)
            assert not resumed.named("resync"), f"attempt {attempt}: {resumed.events[0].data}"
            assert [line.json()["message"] for line in lines] == [
                f"missed {attempt}.{i}" for i in range(3)
            ]


def _ids(client: SSEClient) -> list[tuple[int, str]]:
    return [(int(event.id.rpartition("-")[2]), event.name) for event in client.events if event.id]


async def test_every_id_of_a_resumed_stream_is_unique_and_increasing(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events")) as client:
        await client.wait_named("StatsUpdated")
        await writer.insert_run()
        await client.wait_named("StatsUpdated", 2)  # the figures changed: a new event
    last_id = client.events[0].id  # the stats sent on connect
    assert last_id is not None
    async with sse_connect(http, server.path("events"), {"Last-Event-ID": last_id}) as resumed:
        await resumed.wait_named("JobRunUpdated")
        await resumed.wait_named("StatsUpdated")
        await asyncio.sleep(0.3)  # anything else the server would send at once
    seqs = [seq for seq, _ in _ids(resumed)]
    assert seqs == sorted(set(seqs)), _ids(resumed)
    assert len(resumed.named("StatsUpdated")) == 1, _ids(resumed)
    assert not resumed.named("resync")


async def test_resync_and_the_stats_after_it_carry_their_own_ids(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with sse_connect(http, server.path("events"), {"Last-Event-ID": "garbage"}) as client:
        await client.wait_named("StatsUpdated")
    names = [name for _, name in _ids(client)]
    assert names[:2] == ["resync", "StatsUpdated"]
    seqs = [seq for seq, _ in _ids(client)]
    assert seqs == sorted(set(seqs)), _ids(client)


def _run_seen(field: str, value: Any) -> Any:
    """A wait_for predicate: a JobRunUpdated whose `field` is `value` has arrived."""

    def seen(events: list[SSEEvent]) -> bool:
        return any(e.name == "JobRunUpdated" and e.json()[field] == value for e in events)

    return seen


def _rendered(html: str, attribute: str) -> str:
    found = re.search(rf'{attribute}="([^"]*)"', html)
    assert found is not None, f"no {attribute} in the page"
    return found.group(1)


async def test_a_page_stream_starts_where_the_page_was_rendered(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    # A run changes after the page read it and before its stream starts: the stream,
    # opened from the page's data-live-from, replays the change; no resync, no reload.
    async with sse_connect(http, server.path("events?topics=runs")) as watcher:
        run_id = await writer.insert_run("email", status=2)
        await watcher.wait_for(_run_seen("id", run_id))
        async with http.get(server.path("runs")) as response:
            live_from = _rendered(await response.text(), "data-live-from")
        await writer.execute("UPDATE zapjobs.runs SET status = 3 WHERE id = %s", (run_id,))
        await watcher.wait_for(_run_seen("status", "Completed"))
    url = server.path(f"events?topics=runs&last_event_id={live_from}")
    async with sse_connect(http, url) as page_stream:
        events = await page_stream.wait_named("JobRunUpdated")
        assert [(e.json()["id"], e.json()["status"]) for e in events] == [(run_id, "Completed")]
        assert not page_stream.named("resync")


async def test_a_run_page_stream_gets_the_lines_and_the_changes_since_its_render(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    # The run page's stream names both the render point and its last line: the lines come
    # from the table after that line, the run's changes from the ring, each once.
    async with sse_connect(http, server.path("events?topics=runs")) as watcher:
        run_id = await writer.insert_run("email", status=2)
        await watcher.wait_for(_run_seen("id", run_id))  # published before the render
        await writer.insert_logs(run_id, ["shown 1", "shown 2"])
        async with http.get(server.path(f"runs/{run_id}")) as response:
            html = await response.text()
        live_from = _rendered(html, "data-live-from")
        logs_after = _rendered(html, "data-logs-after")
        await writer.insert_logs(run_id, ["missed 1", "missed 2"])
        await writer.execute("UPDATE zapjobs.runs SET status = 3 WHERE id = %s", (run_id,))
        await watcher.wait_for(_run_seen("status", "Completed"))
    query = f"run={run_id}&topics=&logs_after={logs_after}&last_event_id={live_from}"
    url = server.path(f"events?{query}")
    async with sse_connect(http, url) as page_stream:
        await page_stream.wait_named("RunDetailUpdated")
        await page_stream.wait_named("LogAdded", 2)
        await writer.insert_logs(run_id, ["live"])
        lines = await page_stream.wait_named("LogAdded", 3)
        assert [e.json()["message"] for e in lines] == ["missed 1", "missed 2", "live"]
        assert [e.json()["status"] for e in page_stream.named("RunDetailUpdated")] == ["Completed"]
        assert not page_stream.named("resync")
