"""Two `zapjobs-sse serve` processes on one database behind nginx (deploy/nginx.conf)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.nginx_process import PREFIX, NginxProcess, render_config
from tests.server_process import ServerProcess, free_port, wait_ready
from tests.support import SSEClient, SSEEvent, Writer, sse_connect

pytestmark = [
    pytest.mark.nginx,
]

RUNS = 10


@pytest.fixture
def replicas(database_dsn: str) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            server = ServerProcess(
                database_dsn,
                *("--base-path", PREFIX, "--heartbeat", "1", "--shutdown-grace", "2"),
                *("--log-format", "json"),
            )
            started.append(server.start())
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
async def nginx(tmp_path: Path, replicas: list[ServerProcess]) -> AsyncIterator[NginxProcess]:
    for server in replicas:
        await wait_ready(server.url + "ready")
    port = free_port()
    directory = tmp_path / "nginx"
    directory.mkdir()
    config = render_config(
        directory,
        port=port,
        dashboards=[server.port for server in replicas],
        application=free_port(),  # the application is not part of this test
    )
    process = NginxProcess(directory, config, port).start()
    try:
        yield process
    finally:
        process.stop()


def _epoch(event: SSEEvent) -> str:
    assert event.id is not None
    return event.id.partition("-")[0]


def _statuses(events: list[SSEEvent]) -> dict[str, str]:
    """A client's view of the runs: the latest JobRunUpdated of each."""
    view: dict[str, str] = {}
    for event in events:
        if event.name == "JobRunUpdated":
            run = event.json()
            view[run["id"]] = run["status"]
    return view


async def _set_status(writer: Writer, runs: list[str], status: int) -> None:
    for run_id in runs:
        await writer.execute("UPDATE zapjobs.runs SET status = %s WHERE id = %s", (status, run_id))


async def test_clients_on_either_replica_get_everything_and_survive_one_stopping(
    replicas: list[ServerProcess], nginx: NginxProcess, writer: Writer
) -> None:
    events_url = nginx.url(f"{PREFIX}/events?topics=runs,stats")
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
        # Each replica's event ids carry its own epoch: learn them directly.
        epochs: list[str] = []
        for server in replicas:
            async with sse_connect(http, server.url + "events?topics=stats") as direct:
                epochs.append(_epoch((await direct.wait_named("StatsUpdated"))[0]))
        assert epochs[0] != epochs[1]
        # Through nginx, until one client sits on each replica (round robin: two or three).
        on: dict[str, SSEClient] = {}
        for _ in range(6):
            client = await stack.enter_async_context(sse_connect(http, events_url))
            on.setdefault(_epoch((await client.wait_named("StatsUpdated"))[0]), client)
            if len(on) == 2:
                break
        assert set(on) == set(epochs), "nginx did not spread clients over both replicas"
        a, b = on[epochs[0]], on[epochs[1]]

        runs = [await writer.insert_run("email") for _ in range(RUNS)]
        await _set_status(writer, runs, 2)
        for client in (a, b):
            await client.wait_for(
                lambda events: _statuses(events) == dict.fromkeys(runs, "Running"),
                what="every run Running",
            )

        # Stop A's replica: A's stream ends, and it comes back through nginx on the other.
        await asyncio.to_thread(replicas[0].stop)
        await a.wait_for(lambda events: a.closed, timeout=5, what="A's stream to end")
        await _set_status(writer, runs[:5], 3)  # while A is away
        assert a.last_id is not None and _epoch_of(a.last_id) == epochs[0]
        a2 = await stack.enter_async_context(
            sse_connect(http, events_url, {"Last-Event-ID": a.last_id})
        )
        resync = (await a2.wait_named("resync"))[0]
        assert _epoch(resync) == epochs[1] and a2.events[0].name == "resync"

        # As the browser client does on resync: reload from the API, then apply events.
        view: dict[str, str] = {}
        for run_id in runs:
            async with http.get(nginx.url(f"{PREFIX}/api/runs/{run_id}")) as response:
                assert response.status == 200
                view[run_id] = (await response.json())["status"]
        seen_at_reload = len(a2.events)
        await _set_status(writer, runs[5:], 4)

        expected = dict.fromkeys(runs[:5], "Completed") | dict.fromkeys(runs[5:], "Failed")
        await a2.wait_for(
            lambda events: view | _statuses(events[seen_at_reload:]) == expected,
            what="A's reloaded view to catch up",
        )
        await b.wait_for(lambda events: _statuses(events) == expected, what="B to see all")
        assert not b.named("resync")  # B's replica never went away


def _epoch_of(event_id: str) -> str:
    return event_id.partition("-")[0]
