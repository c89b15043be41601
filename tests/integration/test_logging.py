"""What the server writes to stdout, read from a real `zapjobs-sse serve` process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.server_process import ServerProcess
from tests.support import sse_connect


@pytest.fixture
def json_server(database_dsn: str) -> Iterator[ServerProcess]:
    server = ServerProcess(database_dsn, "--log-format", "json", "--access-log", "--heartbeat", "1")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _records(server: ServerProcess) -> list[dict[str, Any]]:
    """Every log line as JSON (the banner line for humans is the one exception)."""
    records = []
    for line in server.lines:
        if line.startswith("zapjobs-sse: dashboard at"):
            continue
        records.append(json.loads(line))  # fails the test on any non-JSON line
    return records


async def _drop_stream_after_first_event(url: str, request_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"X-Request-ID": request_id}
        async with sse_connect(http, url + "events", headers) as client:
            await client.wait_named("StatsUpdated")
        # Leaving the block closes the connection mid-stream: the client went away.


async def test_json_lines_carry_the_request_id_and_a_gone_client_is_one_info_line(
    json_server: ServerProcess,
) -> None:
    url = json_server.url
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "health", headers={"X-Request-ID": "probe-1"}) as response:
            assert response.status == 200
            assert response.headers["X-Request-ID"] == "probe-1"
        async with http.get(url + "nowhere") as response:
            assert response.status == 404
    await _drop_stream_after_first_event(url, "stream-1")
    json_server.wait_for_line(lambda line: "stream_client_gone" in line)
    json_server.wait_for_line(lambda line: '"path": "/zapjobs/events"' in line)
    assert json_server.stop() == 0

    records = _records(json_server)
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)
    by_request: dict[str, list[str]] = {}
    for record in records:
        by_request.setdefault(record.get("request_id", ""), []).append(record["event"])
    assert by_request["probe-1"] == ["request_handled"]
    assert by_request["stream-1"] == ["stream_opened", "stream_client_gone", "request_handled"]
    handled = [r for r in records if r["event"] == "request_handled"]
    assert {(r["path"], r["status"]) for r in handled} >= {
        ("/zapjobs/health", 200),
        ("/zapjobs/nowhere", 404),
        ("/zapjobs/events", 499),  # the client closed the stream
    }
    # Requests without an X-Request-ID get a generated one; every request line has one.
    assert all(r.get("request_id") for r in handled)
    gone = next(r for r in records if r["event"] == "stream_client_gone")
    assert gone["level"] == "info" and "exception" not in gone
    assert not [r for r in records if r["level"] in ("error", "critical") or "exception" in r]
    assert "server_stopping" in [r["event"] for r in records]


async def test_console_format_without_access_log(database_dsn: str) -> None:
    server = ServerProcess(database_dsn, "--log-format", "console", "--no-access-log")
    server.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "health") as response:
            assert response.status == 200
        await _drop_stream_after_first_event(server.url, "console-1")
        server.wait_for_line(lambda line: "stream_client_gone" in line)
        await asyncio.sleep(0.2)
    finally:
        assert server.stop() == 0
    output = "\n".join(server.lines)
    assert "request_handled" not in output
    opened = next(line for line in server.lines if "stream_opened" in line)
    assert "request_id=console-1" in opened and not opened.startswith("{")
    assert "\x1b[" not in output  # no colours when stdout is not a terminal
    assert "Traceback" not in output
