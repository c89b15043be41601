"""The systems under test, each run in its own process: `python -m bench.hubs KIND DSN PORT`.

- `zapjobs-sse`: this project's server (serve_app), as deployed.
- `aiohttp-sse`: the straightforward hub a user would write with aiohttp-sse: one queue per
  subscriber, one `send()` per subscriber per event.
- `sse-starlette`: the same hub with sse-starlette on uvicorn[standard] (uvloop, httptools).
- `nchan`: a C reference: nginx with the Nchan module (Debian's libnginx-mod-nchan), one
  worker process, an EventSource subscriber location and a websocket publisher location
  on one channel. This process is its publisher: it runs the baselines' feed and sends
  each JobRunUpdated as one websocket message, in order, over one connection.
- `aiohttp-bare`: for the idle scenario only, the floor: a plain aiohttp StreamResponse
  that sends heartbeat comments and nothing else (no database, no SSE library).

The baselines are fed like this project: one aiopg LISTEN connection, the notified runs
read by id, each run encoded to the same JobRunUpdated JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from zapjobs_sse.db import Database, Listener
from zapjobs_sse.server.live.bridge import ChangeSet
from zapjobs_sse.server.live.frames import dumps
from zapjobs_sse.server.live.wire import run_summary_wire

from .client import raise_fd_limit
from .servers import wait_for_port

__all__ = ["EVENTS_PATH", "KINDS", "main", "nchan_missing", "nchan_versions"]

KINDS = ("zapjobs-sse", "aiohttp-sse", "sse-starlette")
EVENTS_PATH = "/zapjobs/events"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NCHAN_PUBLISH_PATH = "/publish"
NCHAN_CONFIG = """\
load_module {module};
worker_processes 1;
worker_rlimit_nofile 65536;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{
    worker_connections 60000;
}}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = {events} {{
            nchan_subscriber eventsource;
            nchan_channel_id runs;
            nchan_subscriber_first_message newest;
            nchan_eventsource_event JobRunUpdated;
            nchan_eventsource_ping_interval {heartbeat};
        }}
        location = {publish} {{
            nchan_publisher websocket;
            nchan_channel_id runs;
            nchan_message_timeout 60s;
        }}
    }}
}}
"""

Publish = Callable[[str, str], None]


async def feed(dsn: str, publish: Publish) -> None:
    """The baselines' LISTEN loop: notified run ids in, one JobRunUpdated per run out."""
    database = await Database.open(dsn, size=2)
    listener = await Listener.open(dsn, timeout=10.0)
    seq = 0
    try:
        while True:
            batch = await listener.next_batch(5.0)
            if batch is None:
                continue
            changes = ChangeSet.decode(batch)
            if not changes.runs:
                continue
            for row in await database.runs_by_ids(sorted(changes.runs)):
                seq += 1
                publish(str(seq), dumps(run_summary_wire(row)))
    finally:
        await listener.close()
        await database.close()


async def _serve_zapjobs(dsn: str, port: int, heartbeat: float, feed: str = "notify") -> None:
    from zapjobs_sse.logconfig import configure_logging
    from zapjobs_sse.server.run import freeze_startup_objects, serve_app
    from zapjobs_sse.settings import Settings
    from zapjobs_sse.signals import wait_for_stop_signal

    configure_logging("json", "warning")
    # The stream limits are raised: the load generator is one client with many streams.
    settings = Settings(
        dsn=dsn,
        host="127.0.0.1",
        port=port,
        heartbeat=heartbeat,
        log_level="warning",
        max_streams=100_000,
        max_streams_per_identity=100_000,
        feed=feed,
    )
    async with serve_app(settings):
        freeze_startup_objects()  # as run_server does
        print("ready", flush=True)
        await wait_for_stop_signal()


async def _serve_aiohttp_sse(dsn: str, port: int, heartbeat: float) -> None:
    from aiohttp import web
    from aiohttp_sse import sse_response

    from zapjobs_sse.signals import wait_for_stop_signal

    subscribers: set[asyncio.Queue[tuple[str, str]]] = set()

    def publish(event_id: str, data: str) -> None:
        for queue in subscribers:
            queue.put_nowait((event_id, data))

    async def events(request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        subscribers.add(queue)
        try:
            async with sse_response(request, ping_interval=heartbeat) as response:
                while True:
                    event_id, data = await queue.get()
                    await response.send(data, id=event_id, event="JobRunUpdated")
        except ConnectionResetError:
            pass
        finally:
            subscribers.discard(queue)
        return response

    app = web.Application()
    app.router.add_get(EVENTS_PATH, events)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    task = asyncio.create_task(feed(dsn, publish))
    print("ready", flush=True)
    try:
        await wait_for_stop_signal()
    finally:
        task.cancel()
        await runner.cleanup()


def _serve_sse_starlette(dsn: str, port: int, heartbeat: float) -> None:
    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    subscribers: set[asyncio.Queue[tuple[str, str]]] = set()

    def publish(event_id: str, data: str) -> None:
        for queue in subscribers:
            queue.put_nowait((event_id, data))

    async def events(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        subscribers.add(queue)

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                while True:
                    event_id, data = await queue.get()
                    yield {"id": event_id, "event": "JobRunUpdated", "data": data}
            finally:
                subscribers.discard(queue)

        return EventSourceResponse(stream(), ping=int(heartbeat))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(feed(dsn, publish))
        print("ready", flush=True)
        yield
        task.cancel()

    app = Starlette(routes=[Route(EVENTS_PATH, events)], lifespan=lifespan)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )
    uvicorn.Server(config).run()


def _nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def nchan_missing() -> str | None:
    """Why the nchan reference cannot run here (None when it can)."""
    if _nginx_binary() is None:
        return "nginx is not installed (apt-get install nginx)"
    if not NCHAN_MODULE.exists():
        return f"{NCHAN_MODULE} is missing (apt-get install libnginx-mod-nchan)"
    return None


def nchan_versions() -> str:
    """nginx's and the Nchan module's versions, as the report's header names packages."""
    binary = _nginx_binary()
    if binary is None:
        return "nginx not installed"
    # nginx -v prints "nginx version: nginx/1.22.1" on stderr.
    nginx = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    version = nginx.stderr.strip().rsplit("/", 1)[-1] or "unknown"
    nchan = "not installed" if nchan_missing() else "installed"
    if shutil.which("dpkg-query"):  # Debian's package
        module = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"],
            capture_output=True,
            text=True,
            check=False,
        )
        nchan = module.stdout.strip() if module.returncode == 0 else nchan
    return f"nginx {version}, libnginx-mod-nchan {nchan}"


@contextlib.contextmanager
def _nginx_with_nchan(port: int, heartbeat: float) -> Iterator[None]:
    """nginx in the foreground, its files in a temporary folder, until the block ends."""
    binary = _nginx_binary()
    assert binary is not None, nchan_missing()
    folder = Path(tempfile.mkdtemp(prefix="zapjobs-bench-nchan-"))
    folder.chmod(0o755)  # nginx's worker runs as nobody when started as root
    config = folder / "nginx.conf"
    config.write_text(
        NCHAN_CONFIG.format(
            module=NCHAN_MODULE,
            folder=folder,
            port=port,
            events=EVENTS_PATH,
            publish=NCHAN_PUBLISH_PATH,
            heartbeat=max(1, round(heartbeat)),
        ),
        encoding="utf-8",
    )
    error_log = str(folder / "error.log")
    nginx = subprocess.Popen(
        [binary, "-p", str(folder), "-e", error_log, "-c", str(config), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, time.monotonic() + 10)
        yield
    finally:
        nginx.terminate()
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()
        shutil.rmtree(folder, ignore_errors=True)


async def _publish_to_nchan(dsn: str, port: int) -> None:
    """The feed, each JobRunUpdated sent to nchan as one message of one websocket."""
    import aiohttp

    from zapjobs_sse.signals import wait_for_stop_signal

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}{NCHAN_PUBLISH_PATH}") as socket,
    ):
        outgoing: asyncio.Queue[str] = asyncio.Queue()

        async def forward() -> None:
            while True:
                await socket.send_str(await outgoing.get())

        async def discard_replies() -> None:
            async for _ in socket:
                pass

        tasks = [
            asyncio.create_task(feed(dsn, lambda event_id, data: outgoing.put_nowait(data))),
            asyncio.create_task(forward()),
            asyncio.create_task(discard_replies()),
        ]
        print("ready", flush=True)
        try:
            await wait_for_stop_signal()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _serve_aiohttp_bare(port: int, heartbeat: float) -> None:
    from aiohttp import web

    from zapjobs_sse.signals import wait_for_stop_signal

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        while True:
            await asyncio.sleep(heartbeat)
            await response.write(b": heartbeat\n\n")

    app = web.Application()
    app.router.add_get(EVENTS_PATH, events)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await wait_for_stop_signal()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> None:
    kind, dsn, port, heartbeat = argv[0], argv[1], int(argv[2]), float(argv[3])
    raise_fd_limit()
    if kind == "zapjobs-sse":
        asyncio.run(_serve_zapjobs(dsn, port, heartbeat))
    elif kind == "zapjobs-sse-wal":
        asyncio.run(_serve_zapjobs(dsn, port, heartbeat, feed="wal"))
    elif kind == "aiohttp-sse":
        asyncio.run(_serve_aiohttp_sse(dsn, port, heartbeat))
    elif kind == "sse-starlette":
        _serve_sse_starlette(dsn, port, heartbeat)
    elif kind == "nchan":
        with _nginx_with_nchan(port, heartbeat):
            asyncio.run(_publish_to_nchan(dsn, port))
    elif kind == "aiohttp-bare":
        asyncio.run(_serve_aiohttp_bare(port, heartbeat))
    else:
        raise SystemExit(
            f"unknown system {kind!r}; one of"
            f" {', '.join((*KINDS, 'zapjobs-sse-wal', 'nchan', 'aiohttp-bare'))}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
