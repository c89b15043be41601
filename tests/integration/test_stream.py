"""The event stream end to end: triggers -> bridge -> broker -> SSE, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import uuid

import aiohttp
import pytest
import yarl

from tests.conftest import BOTH_FEEDS, RunningServer, make_settings
from tests.support import SSEEvent, Writer, sse_connect
from zapjobs_sse.db import LogCursor
from zapjobs_sse.server.run import serve_app

pytestmark = BOTH_FEEDS

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_stream_starts_with_retry_and_stats(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with sse_connect(http, server.path("events")) as client:
        stats = await client.wait_named("StatsUpdated")
        assert client.retry == server.settings.retry_ms
        assert set(stats[0].json()) >= {
            "totalJobs",
            "totalRuns",
            "pendingRuns",
            "runningRuns",
            "completedToday",
            "failedToday",
            "activeWorkers",
            "totalLogEntries",
            "deadLetterCount",
        }
        assert stats[0].id is not None


async def test_stream_headers(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.path("events")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"


async def test_run_update_reaches_global_stream_with_names_and_z_timestamps(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events")) as client:
        await client.wait_named("StatsUpdated")
        run_id = await writer.insert_run("email")
        await writer.execute(
            "UPDATE zapjobs.runs SET status = 2, progress = 5, total = 10 WHERE id = %s", (run_id,)
        )
        await writer.execute(
            "UPDATE zapjobs.runs SET status = 4, error_message = 'boom', duration_ms = 42,"
            " completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
            (run_id,),
        )
        events = await client.wait_for(
            lambda es: any(e.name == "JobRunUpdated" and e.json()["status"] == "Failed" for e in es)
        )
        updates = [e.json() for e in events if e.name == "JobRunUpdated"]
        last = updates[-1]
        assert {"id", "jobTypeId", "status", "progress", "durationMs", "errorMessage"} <= set(last)
        assert last["id"] == run_id and last["jobTypeId"] == "email"
        assert last["durationMs"] == 42 and last["errorMessage"] == "boom"
        assert ISO_Z.match(last["createdAt"])
        # Nobody asked for this run or job type: no detail events.
        assert not client.named("RunDetailUpdated") and not client.named("JobTypeRunUpdated")


async def test_run_and_job_type_filters_route_detail_events(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    watched = await writer.insert_run("email")
    other = await writer.insert_run("report")
    url = server.path(f"events?run={watched}&job_type=report&topics=stats")
    async with sse_connect(http, url) as client:
        await client.wait_named("StatsUpdated")
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (watched,))
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (other,))
        await client.wait_for(
            lambda es: (
                any(e.name == "RunDetailUpdated" and e.json()["status"] == "Running" for e in es)
                and any(
                    e.name == "JobTypeRunUpdated" and e.json()["status"] == "Running" for e in es
                )
            )
        )
        details = [e.json() for e in client.named("RunDetailUpdated")]
        by_type = [e.json() for e in client.named("JobTypeRunUpdated")]
        assert {d["id"] for d in details} == {watched}
        assert "inputJson" in details[-1] and details[-1]["jobTypeId"] == "email"
        assert {d["id"] for d in by_type} == {other}
        # topics=stats: the global run list and workers are not part of this stream.
        assert not client.named("JobRunUpdated")


async def test_worker_heartbeat_reaches_workers_topic_only(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    heartbeat = (
        "INSERT INTO zapjobs.heartbeats (worker_id, hostname, process_id, current_job_type,"
        " timestamp, jobs_processed) VALUES (%s, 'host-a', 42, 'email',"
        " now() AT TIME ZONE 'utc', 7)"
    )
    async with (
        sse_connect(http, server.path("events?topics=workers")) as workers,
        sse_connect(http, server.path("events?topics=runs")) as runs,
        sse_connect(http, server.path("events?topics=stats")) as stats,
    ):
        await stats.wait_named("StatsUpdated")
        await writer.execute(heartbeat, ("w-1",))
        events = await workers.wait_named("WorkerUpdated")
        payload = events[0].json()
        assert payload["workerId"] == "w-1" and payload["hostname"] == "host-a"
        assert payload["currentJobType"] == "email" and payload["jobsProcessed"] == 7
        assert payload["state"] == "active" and ISO_Z.match(payload["timestamp"])
        # Events reach every stream in the order they are published: once the stats the
        # heartbeat changed, and then a later change of each stream's own topic, have
        # arrived, anything misrouted would have arrived before them.
        await stats.wait_named("StatsUpdated", 2)
        await writer.execute(heartbeat, ("w-2",))
        await workers.wait_named("WorkerUpdated", 2)
        await writer.insert_run()
        await runs.wait_named("JobRunUpdated")
        assert not runs.named("WorkerUpdated") and not workers.named("StatsUpdated")


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-insert", "1000-commits"])
async def test_thousand_log_lines_arrive_in_order_exactly_once(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer, one_statement: bool
) -> None:
    run_id = await writer.insert_run("email", status=2)
    messages = [f"line {i}" for i in range(1000)]
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=")) as client:
        if one_statement:
            await writer.insert_logs(run_id, messages)
        else:
            for message in messages:
                await writer.insert_logs(run_id, [message])
        await writer.insert_logs(run_id, ["sentinel"])  # after it, nothing more may come
        await client.wait_named("LogAdded", 1001, timeout=30)
        *lines, last = [e.json() for e in client.named("LogAdded")]
        assert last["message"] == "sentinel"
    stored = await writer.execute(
        "SELECT id::text FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id", (run_id,)
    )
    assert [line["id"] for line in lines] == [row[0] for row in stored][:-1]
    assert [line["message"] for line in lines] == messages
    assert all(line["level"] == "Info" and line["runId"] == run_id for line in lines)


async def test_logs_after_replays_stored_lines_then_streams_live(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await writer.insert_run("email", status=2)
    await writer.insert_logs(run_id, [f"old {i}" for i in range(10)])
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=")) as first:
        await writer.insert_logs(run_id, ["probe"])
        probe = (await first.wait_named("LogAdded"))[0].json()
    rows = await writer.execute(
        "SELECT message FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id", (run_id,)
    )
    cursor_of_fifth = None
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=")) as probe_client:
        del probe_client
    # Take the cursor of line "old 4" from a stream that replays from the start.
    start = "0.00000000-0000-0000-0000-000000000000"
    async with sse_connect(
        http, server.path(f"events?run={run_id}&topics=&logs_after={start}")
    ) as replay:
        events = await replay.wait_named("LogAdded", len(rows))
        assert [e.json()["message"] for e in events] == [r[0] for r in rows]
        cursor_of_fifth = events[4].json()["cursor"]
    assert probe["message"] == "probe"
    async with sse_connect(
        http, server.path(f"events?run={run_id}&topics=&logs_after={cursor_of_fifth}")
    ) as resumed:
        await writer.insert_logs(run_id, ["live"])
        events = await resumed.wait_named("LogAdded", len(rows) - 5 + 1)
        got = [e.json()["message"] for e in events]
        assert got == [r[0] for r in rows[5:]] + ["live"]


async def test_a_viewer_that_joins_behind_a_followed_run_gets_each_line_once_in_order(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    # One viewer follows the run live; others join, while lines keep coming, from an
    # older cursor (the page they rendered) or from none: each ends with the table.
    run_id = await writer.insert_run("email", status=2)
    await writer.insert_logs(run_id, [f"old {i}" for i in range(50)])
    rows = await writer.execute(
        "SELECT timestamp, id::text FROM zapjobs.logs WHERE run_id = %s ORDER BY 1, 2",
        (run_id,),
    )
    tenth = str(LogCursor(rows[9][0], rows[9][1]))
    base = f"events?run={run_id}&topics="

    async def write() -> None:
        for n in range(40):
            await writer.insert_logs(run_id, [f"new {n}.{i}" for i in range(5)])
            await asyncio.sleep(0.005)

    async with (
        sse_connect(http, server.path(base)) as first,
        contextlib.AsyncExitStack() as joined,
    ):
        writing = asyncio.create_task(write())
        behind = []
        for _ in range(4):
            await asyncio.sleep(0.02)
            behind.append(
                await joined.enter_async_context(
                    sse_connect(http, server.path(f"{base}&logs_after={tenth}"))
                )
            )
        await writing
        await writer.insert_logs(run_id, ["sentinel"])  # after it, nothing more may come
        stored = await writer.execute(
            "SELECT message FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id",
            (run_id,),
        )
        messages = [row[0] for row in stored]
        await first.wait_named("LogAdded", 201, timeout=10)
        for client in behind:
            await client.wait_named("LogAdded", len(messages) - 10, timeout=10)
        assert [e.json()["message"] for e in first.named("LogAdded")] == messages[50:]
        for client in behind:
            assert [e.json()["message"] for e in client.named("LogAdded")] == messages[10:]
            seqs = [int((e.id or "").rpartition("-")[2]) for e in client.events]
            assert seqs == sorted(set(seqs))


async def test_noop_update_sends_nothing(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=runs")) as watcher:
        run_id = await writer.insert_run("email")
        await watcher.wait_named("JobRunUpdated")  # the insert's events are published
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=runs")) as client:
        await writer.execute("UPDATE zapjobs.runs SET status = status WHERE id = %s", (run_id,))
        await writer.execute("UPDATE zapjobs.runs SET progress = 1 WHERE id = %s", (run_id,))
        await writer.execute("UPDATE zapjobs.runs SET progress = 2 WHERE id = %s", (run_id,))
        await client.wait_for(
            lambda events: any(
                e.name == "RunDetailUpdated" and e.json()["progress"] == 2 for e in events
            ),
            what="the last update",
        )
        # Updates arrive in commit order; the no-op one made no event. (Two real updates
        # in one bridge batch may arrive as one, the latest.)
        progress = [e.json()["progress"] for e in client.named("RunDetailUpdated")]
        assert progress in ([1, 2], [2])


async def test_heartbeat_comments_on_idle_stream(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with sse_connect(http, server.path("events?topics=workers")) as client:
        await client.wait_for(lambda _: client.comments >= 2, timeout=4, what="2 heartbeats")


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("run=not-a-uuid", "run"),
        ("job_type=", "job_type"),
        ("topics=stats,bogus", "topics"),
        ("logs_after=123", "logs_after"),
        ("run=" + str(uuid.uuid4()) + "&logs_after=nope", "logs_after"),
        ("&".join(f"job_type=j{i}" for i in range(101)), "job_type"),
        ("last_event_id=" + "x" * 300, "last_event_id"),
    ],
)
async def test_malformed_parameters_are_400_naming_the_parameter(
    server: RunningServer, http: aiohttp.ClientSession, query: str, names: str
) -> None:
    async with http.get(server.path("events?" + query)) as response:
        assert response.status == 400
        body = await response.json()
        assert names in body["error"]


def _ids(events: list[SSEEvent]) -> list[str]:
    return [e.id or "" for e in events]


async def test_a_change_committed_right_after_start_is_streamed(
    database_dsn: str, http: aiohttp.ClientSession, writer: Writer, feed: str
) -> None:
    """The server accepts connections only once its feed (LISTEN, slot) is in place."""
    for _ in range(5):
        async with (
            serve_app(make_settings(database_dsn, feed=feed)) as url,
            sse_connect(http, url + "events?topics=runs") as client,
        ):
            async with http.get(url + "ready") as ready:
                assert ready.status == 200, "serving before the LISTEN is in place"
            run_id = await writer.insert_run()
            events = await client.wait_named("JobRunUpdated", timeout=5)
            assert events[0].json()["id"] == run_id


async def _raw_stream(
    server: RunningServer, version: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open the stream with a hand-written request; return the reader and the head."""
    url = yarl.URL(server.path("events"))
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"GET {url.path} HTTP/{version}\r\nHost: {url.host}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, head


def _dechunk(body: bytes) -> tuple[bytes, bytes]:
    """Strictly decode complete chunks; return (payload, incomplete tail)."""
    payload = b""
    while True:
        size_end = body.find(b"\r\n")
        if size_end < 0:
            return payload, body
        size = int(body[:size_end], 16)
        assert size > 0, "the stream must not end"
        end = size_end + 2 + size
        if len(body) < end + 2:
            return payload, body
        assert body[end : end + 2] == b"\r\n", "chunk not terminated where its size says"
        payload += body[size_end + 2 : end]
        body = body[end + 2 :]


async def test_a_burst_of_updates_arrives_whole_in_valid_chunks_over_http_1_1(
    server: RunningServer, writer: Writer
) -> None:
    run_ids = [await writer.insert_run("burst") for _ in range(200)]
    reader, connection, head = await _raw_stream(server, "1.1")
    try:
        assert b"Transfer-Encoding: chunked" in head
        await writer.execute(
            "UPDATE zapjobs.runs SET status = 2 WHERE id = ANY(%s::uuid[])", (run_ids,)
        )
        received: set[str] = set()
        payload = tail = b""
        while len(received) < len(run_ids):
            tail += await asyncio.wait_for(reader.read(65536), 5)
            decoded, tail = _dechunk(tail)
            payload += decoded
            received = set(
                re.findall(r'"id":"([0-9a-f-]{36})","jobTypeId":"burst"', payload.decode())
            )
        assert received == set(run_ids)
    finally:
        connection.close()


async def test_http_1_0_clients_get_the_events_unchunked(
    server: RunningServer, writer: Writer
) -> None:
    run_id = await writer.insert_run("plain")
    reader, connection, head = await _raw_stream(server, "1.0")
    try:
        assert b"Transfer-Encoding" not in head
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (run_id,))
        body = b""
        while f'"id":"{run_id}"'.encode() not in body:
            body += await asyncio.wait_for(reader.read(65536), 5)
        assert body.startswith(b"retry: ")
        assert b"event: JobRunUpdated\n" in body
    finally:
        connection.close()


async def test_an_open_stream_costs_aiohttps_tasks_only(server: RunningServer) -> None:
    before = asyncio.all_tasks()
    streams = [await _raw_stream(server, "1.1") for _ in range(20)]
    await asyncio.sleep(0.2)
    try:
        per_coroutine = collections.Counter(
            task.get_coro().__qualname__  # type: ignore[union-attr]
            for task in asyncio.all_tasks() - before
        )
        # aiohttp's two (the connection's and, with handler cancellation, the handler's);
        # none of aiohttp-sse's own: the handler's loop sends the heartbeats.
        per_stream = {name for name, count in per_coroutine.items() if count >= 20}
        assert per_stream == {"RequestHandler.start", "RequestHandler._handle_request"}
    finally:
        for _, connection, _ in streams:
            connection.close()
