"""Database faults: a killed feed connection (LISTEN or walsender), a full PostgreSQL
restart, a silent network, on both feeds.

After each, the bridge reconnects, every client receives `resync`, readiness tells the
truth during the outage, and events flow again; the WAL feed leaves no slot behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp

from tests.conftest import (
    BOTH_FEEDS,
    FEED_CONNECTION,
    PrivatePostgres,
    RunningServer,
    make_settings,
)
from tests.support import SSEClient, SSEEvent, Writer, sse_connect
from zapjobs_sse.server.run import serve_app

pytestmark = BOTH_FEEDS

CLIENTS = 100
FAST = {
    "db_check_interval": 1.0,
    "db_check_timeout": 1.0,
    "reconnect_max_delay": 0.5,
    "max_streams_per_identity": 1000,
}


@contextlib.asynccontextmanager
async def clients(url: str, count: int) -> AsyncIterator[list[SSEClient]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        responses = await asyncio.gather(
            *(session.get(url, timeout=aiohttp.ClientTimeout(total=None)) for _ in range(count))
        )
        assert all(r.status == 200 for r in responses)
        streams = [SSEClient(r).start() for r in responses]
        try:
            await asyncio.gather(*(s.wait_named("StatsUpdated") for s in streams))
            yield streams
        finally:
            await asyncio.gather(*(s.close() for s in streams))


async def ready_status(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.json()


async def wait_ready(url: str, want: int, within: float) -> float:
    """Seconds until {base}/ready answers `want`."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < within:
            status, _ = await ready_status(session, url)
            if status == want:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
    raise AssertionError(f"/ready did not answer {want} within {within} s")


async def everyone_sees_run(streams: list[SSEClient], run_id: str) -> None:
    def seen(events: list[SSEEvent]) -> bool:
        return any(e.name == "JobRunUpdated" and run_id in e.data for e in events)

    await asyncio.gather(*(s.wait_for(seen, timeout=10) for s in streams))


async def everyone_gets(streams: list[SSEClient], name: str, count: int = 1) -> None:
    await asyncio.gather(*(s.wait_named(name, count, timeout=15) for s in streams))


async def test_killed_listen_connection_reconnects_and_resyncs_every_client(
    database_dsn: str, writer: Writer, feed: str
) -> None:
    async with (
        serve_app(make_settings(database_dsn, feed=feed, **FAST)) as url,
        clients(url + "events", CLIENTS) as streams,
    ):
        killed = await writer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (FEED_CONNECTION[feed],),
        )
        assert killed == [(True,)]
        started = time.monotonic()
        await everyone_gets(streams, "resync")
        reconnected_in = time.monotonic() - started
        assert {s.named("resync")[0].json()["reason"] for s in streams} == {"database_reconnected"}
        run_id = await writer.insert_run()
        await everyone_sees_run(streams, run_id)
    print(f"reconnect after pg_terminate_backend: {reconnected_in:.2f} s")


async def test_postgres_restart_resyncs_every_client_and_readiness_tells_the_truth(
    private_postgres: PrivatePostgres, feed: str
) -> None:
    async with (
        serve_app(make_settings(private_postgres.dsn, feed=feed, **FAST)) as url,
        clients(url + "events", CLIENTS) as streams,
    ):
        await wait_ready(url + "ready", 200, within=5)
        await asyncio.to_thread(private_postgres.stop)
        await wait_ready(url + "ready", 503, within=5)
        restarting = time.monotonic()
        await asyncio.to_thread(private_postgres.start)
        restarted = time.monotonic()
        back_in = await wait_ready(url + "ready", 200, within=15) + restarted - restarting
        # From the restart call: PostgreSQL's own start, then at most one backoff delay
        # (reconnect_max_delay, 0.5 s here) and a check; nothing waits for more.
        bound = (restarted - restarting) + FAST["reconnect_max_delay"] + 1.0
        assert back_in <= bound, f"ready {back_in:.2f} s after the restart call"
        await everyone_gets(streams, "resync")
        writer = Writer(private_postgres.dsn)
        try:
            run_id = await writer.insert_run()
        finally:
            writer.close()
        await everyone_sees_run(streams, run_id)
        flowing_in = time.monotonic() - restarting
    print(
        f"after PostgreSQL restart (reconnect_max_delay 0.5 s): PostgreSQL started in"
        f" {restarted - restarting:.2f} s, ready in {back_in:.2f} s, events in {flowing_in:.2f} s"
    )


class SilenceableProxy:
    """A TCP proxy to PostgreSQL that can go silent: bytes stop, sockets stay open."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        self._unix = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        self._tcp = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._dsn = parts
        self.silent = False
        self._speaking = asyncio.Event()
        self._speaking.set()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = self._dsn.username or "postgres"
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{port}", self._dsn.path, "", ""))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._speaking.wait()
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        self._writers.append(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
        finally:
            writer.close()

    def go_silent(self) -> None:
        self.silent = True
        self._speaking.clear()

    def heal(self) -> None:
        """Speak again; the connections that went silent are cut, as a router would."""
        self.silent = False
        self._speaking.set()
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()


async def _first_not_listening(url: str, since: float, within: float) -> float:
    """Seconds from `since` to the first /ready answer whose bridge is not listening,
    probing every 0.1 s without waiting for slow answers (each waits on the database)."""
    found: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def probe(session: aiohttp.ClientSession) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            _, body = await ready_status(session, url)
            checks = body["checks"]
            assert isinstance(checks, dict)
            if checks["bridge"] != "listening" and not found.done():
                found.set_result(time.monotonic() - since)

    async with aiohttp.ClientSession() as session:
        probes = []
        while not found.done() and time.monotonic() - since < within:
            probes.append(asyncio.create_task(probe(session)))
            await asyncio.sleep(0.1)
        await asyncio.gather(*probes)
    assert found.done(), "loss not detected"
    return found.result()


async def test_silent_network_loss_is_detected_within_the_configured_time(
    database_dsn: str, writer: Writer, feed: str
) -> None:
    proxy = SilenceableProxy(database_dsn)
    dsn = await proxy.start()
    bound = FAST["db_check_interval"] + FAST["db_check_timeout"]
    try:
        async with (
            serve_app(make_settings(dsn, feed=feed, **FAST)) as url,
            clients(url + "events", 10) as streams,
        ):
            await wait_ready(url + "ready", 200, within=5)
            proxy.go_silent()
            started = time.monotonic()
            detected_in = await _first_not_listening(url + "ready", started, bound + 2.0)
            # A probe every 0.1 s, each answering with the state at its answer: the
            # first "not_listening" comes at most one probe period after the bridge knew.
            assert detected_in <= bound + 0.25, f"loss detected in {detected_in:.2f} s"
            proxy.heal()
            await wait_ready(url + "ready", 200, within=15)
            await everyone_gets(streams, "resync")
            run_id = await writer.insert_run()
            await everyone_sees_run(streams, run_id)
    finally:
        await proxy.close()
    print(f"silent loss detected in {detected_in:.2f} s (bound {bound:.1f} s + one check)")


async def test_a_failed_read_tells_the_streams_to_resync(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await writer.insert_run(status=2)
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=")) as client:
        await asyncio.sleep(0.3)
        # A schema the server cannot read (here, a renamed column): the lines named by
        # the notification cannot be read, so the stream is told to reload.
        await writer.execute("ALTER TABLE zapjobs.logs RENAME COLUMN category TO category_x")
        try:
            await writer.insert_logs(run_id, ["unreadable"])
            events = await client.wait_named("resync")
        finally:
            await writer.execute("ALTER TABLE zapjobs.logs RENAME COLUMN category_x TO category")
        assert events[0].json() == {"reason": "read_failed"}
