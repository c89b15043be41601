"""/health, /ready and /metrics of a real server on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import psycopg2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings as settings_for
from tests.support import Writer, sse_connect
from zapjobs_sse.server.app import create_app
from zapjobs_sse.server.keys import BRIDGE, PUBLIC_PATHS

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def start_app(
    database_dsn: str, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[ServerFactory]:
    """Start create_app(settings) on a loopback port; the app stays reachable for the test."""

    async def start(**overrides: Any) -> TestServer:
        app = create_app(settings_for(database_dsn, **overrides))
        test_server = await aiohttp_server(app)
        await _wait_listening(test_server.app)
        return test_server

    yield start


async def _wait_listening(app: web.Application, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        await app[BRIDGE].listening.wait()


async def _metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Every sample of the exposition, keyed `name{label="value",...}`."""
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def _until(
    probe: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_health_answers_json_without_touching_the_database(
    start_app: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await start_app()
    async with http.get(server.make_url("/zapjobs/health")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
        assert response.headers["Cache-Control"] == "no-store"


async def test_ready_reports_database_bridge_and_notify_queue(
    start_app: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await start_app(notify_queue_threshold=0.25)
    async with http.get(server.make_url("/zapjobs/ready")) as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["status"] == "ready"
    checks = body["checks"]
    assert checks["database"] == "ok" and checks["bridge"] == "listening"
    assert checks["notifyQueue"] == "ok" and checks["notifyQueueThreshold"] == 0.25
    assert 0 <= checks["notifyQueueUsage"] < 0.25


async def test_ready_follows_the_listen_connection(
    start_app: ServerFactory, http: aiohttp.ClientSession, admin_dsn: str, writer: Writer
) -> None:
    """Lose the LISTEN connection while the database refuses new ones: not ready; then back."""
    server = await start_app()
    name = (await writer.execute("SELECT current_database()"))[0][0]
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    url = server.make_url("/zapjobs/ready")

    async def status() -> int:
        async with http.get(url) as response:
            return response.status

    try:
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            cursor.execute("SELECT pg_terminate_backend(%s)", (server.app[BRIDGE].backend_pid,))
        await _until(lambda: _is(status, 503), what="/ready to turn 503")
        async with http.get(url) as response:
            body = await response.json()
        assert body["checks"]["bridge"] == "not_listening"
        assert body["checks"]["database"] == "ok"  # the pool's connections still work
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        await _until(lambda: _is(status, 200), what="/ready to turn 200 again")
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        admin.close()


async def _is(probe: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await probe() == expected


async def test_metrics_count_streams_events_frames_and_delay(
    start_app: ServerFactory, http: aiohttp.ClientSession, writer: Writer
) -> None:
    server = await start_app()
    metrics_url = server.make_url("/zapjobs/metrics")
    async with sse_connect(http, str(server.make_url("/zapjobs/events"))) as client:
        await client.wait_named("StatsUpdated")
        run_id = await writer.insert_run("email")
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (run_id,))
        await client.wait_named("JobRunUpdated", 2)
        samples = await _metrics(http, str(metrics_url))
    assert samples["zapjobs_sse_open_streams"] == 1
    assert samples['zapjobs_sse_events_published_total{event="JobRunUpdated"}'] == 2
    assert samples['zapjobs_sse_frames_sent_total{event="JobRunUpdated"}'] == 2
    assert samples["zapjobs_sse_notifications_received_total"] >= 2
    assert samples["zapjobs_sse_bridge_listening"] == 1
    assert samples["zapjobs_sse_bridge_reconnects_total"] == 0
    assert samples["zapjobs_sse_stats_refreshes_total"] >= 1
    assert samples["zapjobs_sse_stats_refresh_duration_seconds"] > 0
    assert 0 <= samples["zapjobs_sse_notify_queue_usage_ratio"] < 1
    # Every notification carries its transaction's start time: each one is observed.
    delays = samples["zapjobs_sse_commit_to_send_delay_seconds_count"]
    assert delays >= 2
    assert samples['zapjobs_sse_commit_to_send_delay_seconds_bucket{le="1.0"}'] == delays
    assert samples["zapjobs_sse_clients_evicted_total"] == 0
    assert samples["zapjobs_sse_resyncs_sent_total"] == 0


async def test_metrics_count_resyncs_reconnects_and_evictions(
    start_app: ServerFactory, http: aiohttp.ClientSession, admin_dsn: str
) -> None:
    server = await start_app()
    events_url = str(server.make_url("/zapjobs/events"))
    async with sse_connect(http, events_url, {"Last-Event-ID": "gone-1"}) as client:
        await client.wait_named("resync")
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (server.app[BRIDGE].backend_pid,))
    finally:
        admin.close()
    metrics_url = str(server.make_url("/zapjobs/metrics"))

    async def reconnected() -> bool:
        samples = await _metrics(http, metrics_url)
        return samples["zapjobs_sse_bridge_reconnects_total"] == 1

    await _until(reconnected, what="the bridge to reconnect")

    small = await start_app(client_buffer_bytes=1)
    async with http.get(small.make_url("/zapjobs/events")) as response:
        await response.read()  # the first frame overflows the 1-byte buffer: cut at once
    small_url = str(small.make_url("/zapjobs/metrics"))

    async def evicted() -> bool:
        samples = await _metrics(http, small_url)
        return samples["zapjobs_sse_clients_evicted_total"] == 1

    await _until(evicted, what="the eviction to be counted")
    samples = await _metrics(http, metrics_url)
    assert samples["zapjobs_sse_resyncs_sent_total"] >= 1
    assert samples["zapjobs_sse_open_streams"] == 0


async def test_two_apps_in_one_process_keep_separate_registries(
    start_app: ServerFactory, http: aiohttp.ClientSession, writer: Writer
) -> None:
    first, second = await start_app(), await start_app()
    async with sse_connect(http, str(first.make_url("/zapjobs/events"))) as client:
        await client.wait_named("StatsUpdated")
        a = await _metrics(http, str(first.make_url("/zapjobs/metrics")))
        b = await _metrics(http, str(second.make_url("/zapjobs/metrics")))
    assert a["zapjobs_sse_open_streams"] == 1 and b["zapjobs_sse_open_streams"] == 0


@pytest.mark.parametrize("metrics_open", [False, True])
def test_probes_are_public_and_metrics_only_when_open(
    database_dsn: str, metrics_open: bool
) -> None:
    app = create_app(settings_for(database_dsn, metrics_open=metrics_open, base_path="/ops/z"))
    public = app[PUBLIC_PATHS]
    assert {"/ops/z/health", "/ops/z/ready"} <= public
    assert ("/ops/z/metrics" in public) is metrics_open
    assert "/ops/z/events" not in public


TOKEN = "metrics-scraper-token-0123456789"


@pytest.mark.parametrize("metrics_open", [False, True])
async def test_metrics_need_the_same_credentials_as_the_rest_unless_open(
    start_app: ServerFactory, http: aiohttp.ClientSession, metrics_open: bool
) -> None:
    server = await start_app(auth="token", tokens=TOKEN, metrics_open=metrics_open)
    url = server.make_url("/zapjobs/metrics")
    async with http.get(url) as response:
        assert response.status == (200 if metrics_open else 401)
    async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        assert "zapjobs_sse_open_streams" in await response.text()
    # Probes stay open either way (--health-open), the data does not.
    async with http.get(server.make_url("/zapjobs/health")) as response:
        assert response.status == 200
    async with http.get(server.make_url("/zapjobs/api/stats")) as response:
        assert response.status == 401
