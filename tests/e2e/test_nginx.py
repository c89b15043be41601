"""deploy/nginx.conf with a real nginx: the application at /, the dashboard at /ops/zapjobs/."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser

from tests.conftest import make_settings as settings_for
from tests.e2e.nginx_process import NGINX, PREFIX, NginxProcess, Tls, render_config
from tests.server_process import free_port, wait_ready
from tests.support import Writer, sse_connect
from zapjobs_sse.server.run import serve_app
from zapjobs_sse.settings import Settings

pytestmark = [
    pytest.mark.nginx,
]

APPLICATION_BODY = "the application's own page"


@pytest.fixture
async def application() -> AsyncIterator[int]:
    """The application the dashboard sits next to: answers every path itself."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"{APPLICATION_BODY}: {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.fixture
async def dashboard(database_dsn: str) -> AsyncIterator[int]:
    settings = settings_for(database_dsn, base_path=PREFIX, heartbeat=1.0)
    async with serve_app(settings) as url:
        await wait_ready(url + "ready")
        yield int(url.split(":")[2].split("/")[0])


@pytest.fixture
def nginx(tmp_path: Path, application: int, dashboard: int) -> Iterator[NginxProcess]:
    port = free_port()
    directory = tmp_path / "nginx"
    directory.mkdir()
    config = render_config(directory, port=port, dashboards=[dashboard], application=application)
    process = NginxProcess(directory, config, port).start()
    try:
        yield process
    finally:
        process.stop()


# Far below what a buffering proxy would take, far above a loaded machine's delay.
UNBUFFERED = 5.0


async def _curl_until_event(argv: list[str], run_id: str, writer: Writer) -> float:
    """Start curl on the stream, commit a change when the stream is open; the delay."""
    curl = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert curl.stdout is not None
    try:
        first = await asyncio.wait_for(curl.stdout.readline(), 5)
        assert first in (b": connected\n", b": connected\r\n"), first  # the stream is open
        committed = time.monotonic()
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (run_id,))
        name = b""
        while True:
            line = await asyncio.wait_for(curl.stdout.readline(), UNBUFFERED)
            if line.startswith(b"event:"):
                name = line.split(b":", 1)[1].strip()
            if name == b"JobRunUpdated" and line.startswith(b"data:") and run_id.encode() in line:
                return time.monotonic() - committed
    finally:
        curl.send_signal(signal.SIGTERM)
        await curl.wait()


async def test_curl_through_nginx_receives_job_run_updated_unbuffered(
    nginx: NginxProcess, writer: Writer
) -> None:
    run_id = await writer.insert_run("email")
    url = nginx.url(f"{PREFIX}/events?topics=runs")
    # A buffering proxy would hold the event until kilobytes of heartbeats (minutes)
    # pushed it out; how fast it is without one, bench/ measures.
    delay = await _curl_until_event(["curl", "-sN", url], run_id, writer)
    assert delay < UNBUFFERED


async def test_idle_stream_heartbeats_pass_through_unbuffered(nginx: NginxProcess) -> None:
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sN", nginx.url(f"{PREFIX}/events?topics=runs"), stdout=asyncio.subprocess.PIPE
    )
    assert curl.stdout is not None
    try:
        heartbeats = 0
        async with asyncio.timeout(4):
            while heartbeats < 2:  # the dashboard sends one a second here
                if (await curl.stdout.readline()).startswith(b":"):
                    heartbeats += 1
    finally:
        curl.send_signal(signal.SIGTERM)
        await curl.wait()


def test_read_timeout_of_the_stream_is_above_the_default_heartbeat() -> None:
    text = NGINX.read_text("utf-8")
    stream = text.split(f"location = {PREFIX}/events {{", 1)[1].split("}", 1)[0]
    assert "proxy_buffering off;" in stream and "proxy_http_version 1.1;" in stream
    timeout = re.search(r"proxy_read_timeout (\d+)s;", stream)
    assert timeout is not None and int(timeout[1]) > 2 * Settings().heartbeat


async def test_application_and_dashboard_share_the_origin(nginx: NginxProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(nginx.url("/orders/42")) as response:
            assert await response.text() == f"{APPLICATION_BODY}: /orders/42"
        async with http.get(nginx.url(f"{PREFIX}/health")) as response:
            assert response.status == 200 and await response.json() == {"status": "ok"}
            # nginx's $request_id reaches the dashboard: one id in both logs.
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
        async with http.get(nginx.url(f"{PREFIX}/ready")) as response:
            assert response.status == 200, await response.text()
        async with http.get(nginx.url(f"{PREFIX}/metrics")) as response:
            assert "zapjobs_sse_open_streams" in await response.text()
        async with http.get(nginx.url(f"{PREFIX}/api/stats")) as response:
            assert response.status == 200 and "totalRuns" in await response.json()
        async with http.get(nginx.url(PREFIX), allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"].endswith(f"{PREFIX}/")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []  # what a GET may follow
        self.posted: list[str] = []  # the actions of POST forms (the operators' buttons)
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("href", "src", "action"):
            value = values.get(name)
            if value is None:
                continue
            if tag == "form" and (values.get("method") or "get").lower() == "post":
                self.posted.append(value)
            else:
                self.urls.append(value)
        if tag == "body":
            self.base = values.get("data-base")


async def test_pages_and_their_links_work_under_the_prefix(
    nginx: NginxProcess, dashboard: int, writer: Writer
) -> None:
    run_id = await writer.insert_run("email")
    await writer.insert_logs(run_id, ["hello"])
    pages = ["/", "/runs", f"/runs/{run_id}", "/jobs", "/workers", "/dead-letter"]
    async with aiohttp.ClientSession() as http:
        links: set[str] = set()
        for page in pages:
            async with http.get(nginx.url(PREFIX + page)) as response:
                assert response.status == 200, page
                parser = _Links()
                parser.feed(await response.text())
            # The live client builds its EventSource URL from data-base.
            assert parser.base == PREFIX, page
            local = [url for url in parser.urls if url.startswith("/")]
            assert local and all(url.startswith(PREFIX + "/") for url in local), local
            assert all(url.startswith(PREFIX + "/") for url in parser.posted), parser.posted
            links.update(url for url in local if not url.endswith("/runs/go"))
        for link in sorted(links):
            async with http.get(nginx.url(link)) as response:
                status = response.status
            async with http.get(f"http://127.0.0.1:{dashboard}{link}") as response:
                assert status == response.status, link  # nginx serves what the dashboard has
            if "/static/" not in link:
                assert status == 200, link
        async with sse_connect(http, nginx.url(f"{PREFIX}/events?run={run_id}")) as client:
            await client.wait_named("StatsUpdated")


@pytest.fixture
def certificate(tmp_path: Path) -> Tls:
    key, certificate = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    key.chmod(0o644)
    return Tls(free_port(), certificate, key)


async def test_tls_server_speaks_http2_to_clients_and_streams(
    tmp_path: Path, application: int, dashboard: int, certificate: Tls, writer: Writer
) -> None:
    port = free_port()
    directory = tmp_path / "nginx-tls"
    directory.mkdir()
    config = render_config(
        directory, port=port, dashboards=[dashboard], application=application, tls=certificate
    )
    nginx = NginxProcess(directory, config, port).start()
    base = f"https://127.0.0.1:{certificate.port}{PREFIX}"
    try:
        # The dashboard runs in this event loop: curl must not block it.
        curl = await asyncio.create_subprocess_exec(
            *["curl", "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version}"],
            f"{base}/health",
            stdout=asyncio.subprocess.PIPE,
        )
        version, _ = await asyncio.wait_for(curl.communicate(), 10)
        assert version == b"2"
        run_id = await writer.insert_run("email")
        argv = ["curl", "-skN", "--http2", f"{base}/events?topics=runs"]
        assert await _curl_until_event(argv, run_id, writer) < UNBUFFERED
    finally:
        nginx.stop()


@pytest.mark.browser
async def test_browser_under_the_prefix_streams_through_nginx(
    nginx: NginxProcess, writer: Writer, browser: Browser
) -> None:
    requests: list[str] = []
    page = await browser.new_page()
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(nginx.url(f"{PREFIX}/"))
    await page.wait_for_selector('#connection-status[data-state="connected"]', timeout=10000)
    run_id = await writer.insert_run("email")
    await page.wait_for_selector(f'tr[data-run-id="{run_id}"]', timeout=5000)
    await page.close()
    local = [url for url in requests if url.startswith(nginx.url())]
    streams = [url for url in local if "/events" in url]
    assert streams and all(url.startswith(nginx.url(f"{PREFIX}/events")) for url in streams)
    assert all(url.startswith(nginx.url(f"{PREFIX}/")) for url in local), local
