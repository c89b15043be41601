"""Heartbeats keep an idle stream open through a proxy whose read timeout is shorter."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import make_settings
from tests.e2e.nginx_process import PREFIX, NginxProcess, render_config
from tests.server_process import free_port, wait_ready
from tests.support import Writer, sse_connect
from zapjobs_sse.server.run import serve_app

pytestmark = pytest.mark.nginx

PROXY_READ_TIMEOUT = 5


@pytest.fixture
async def proxied(
    tmp_path: Path, database_dsn: str, request: pytest.FixtureRequest
) -> AsyncIterator[NginxProcess]:
    """The dashboard (heartbeat from the test's parameter) behind nginx with a 5 s read timeout."""
    heartbeat: float = request.param
    settings = make_settings(database_dsn, base_path=PREFIX, heartbeat=heartbeat)
    async with serve_app(settings) as url:
        await wait_ready(url + "ready")
        dashboard = int(url.split(":")[2].split("/")[0])
        port = free_port()
        directory = tmp_path / "nginx"
        directory.mkdir()
        config = render_config(
            directory, port=port, dashboards=[dashboard], application=free_port()
        )
        config = re.sub(
            r"proxy_read_timeout \S+;", f"proxy_read_timeout {PROXY_READ_TIMEOUT}s;", config
        )
        process = NginxProcess(directory, config, port).start()
        try:
            yield process
        finally:
            process.stop()


@pytest.mark.parametrize("proxied", [2.0], indirect=True)
async def test_idle_stream_survives_twenty_seconds_behind_a_five_second_read_timeout(
    proxied: NginxProcess, writer: Writer
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        sse_connect(http, proxied.url(f"{PREFIX}/events?topics=runs")) as client,
    ):
        opened = time.monotonic()
        await asyncio.sleep(20)
        assert not client.closed, "the proxy cut the idle stream"
        assert client.comments >= 8
        run_id = await writer.insert_run()
        events = await client.wait_named("JobRunUpdated")
        assert events[0].json()["id"] == run_id
        assert time.monotonic() - opened > 20


@pytest.mark.parametrize("proxied", [30.0], indirect=True)
async def test_without_heartbeats_the_same_proxy_cuts_the_stream(proxied: NginxProcess) -> None:
    """The control: the read timeout is real, so the test above proves the heartbeats."""
    async with (
        aiohttp.ClientSession() as http,
        sse_connect(http, proxied.url(f"{PREFIX}/events?topics=runs")) as client,
    ):
        opened = time.monotonic()
        await client.wait_for(lambda _: client.closed, timeout=PROXY_READ_TIMEOUT + 5)
        assert time.monotonic() - opened >= PROXY_READ_TIMEOUT - 0.5
