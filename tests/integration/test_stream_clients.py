"""What third-party SSE clients see: httpx-sse (Python) reads every block as it comes."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.conftest import RunningServer
from tests.server_process import ServerProcess
from tests.support import Writer


async def _events(url: str, until: str, count: int = 1) -> list[ServerSentEvent]:
    """Every event httpx-sse reports, until `count` events named `until` arrived."""
    seen: list[ServerSentEvent] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", url) as source,
    ):
        async with asyncio.timeout(10):
            async for event in source.aiter_sse():
                seen.append(event)
                if len([e for e in seen if e.event == until]) >= count:
                    break
    return seen


@pytest.mark.parametrize("query", ["", "?topics=runs"], ids=["with-stats", "nothing-at-first"])
async def test_no_client_sees_an_empty_event_when_a_stream_starts(
    server: RunningServer, writer: Writer, query: str
) -> None:
    reading = asyncio.create_task(_events(server.path("events" + query), "JobRunUpdated"))
    await asyncio.sleep(0.3)
    await writer.insert_run()
    seen = await reading
    assert [e for e in seen if not e.data] == []
    assert seen[0].retry == server.settings.retry_ms  # the hint came with the first event


async def test_line_separators_in_database_text_reach_the_client_as_text(
    server: RunningServer, writer: Writer
) -> None:
    run_id = await writer.insert_run()
    url = server.path(f"events?run={run_id}&topics=")
    reading = asyncio.create_task(_events(url, "LogAdded"))
    await asyncio.sleep(0.3)
    message = "one\u2028two\u2029three"
    await writer.insert_logs(run_id, [message])
    [line] = [e for e in await reading if e.event == "LogAdded"]
    assert "\u2028" not in line.data and "\u2029" not in line.data
    assert json.loads(line.data)["message"] == message


async def test_a_server_shutting_down_sends_a_named_event_with_the_retry_hint(
    database_dsn: str,
) -> None:
    server = await asyncio.to_thread(ServerProcess(database_dsn).start)
    seen: list[ServerSentEvent] = []
    try:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            aconnect_sse(client, "GET", server.url + "events?topics=stats") as source,
        ):
            async with asyncio.timeout(10):
                async for event in source.aiter_sse():
                    seen.append(event)
                    if event.event == "StatsUpdated":
                        server.process.send_signal(signal.SIGTERM)
    finally:
        await asyncio.to_thread(server.stop)
    assert [e for e in seen if not e.data] == []
    *before, last = seen
    assert last.event == "reconnect"
    assert json.loads(last.data) == {"reason": "shutdown"}
    assert last.retry is not None and 500 <= last.retry <= 5000
    assert last.id == before[-1].id  # it has no id of its own: nothing to resume from
