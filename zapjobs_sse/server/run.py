"""Running the server: resolve the database (embedded or configured), migrate, serve."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from aiohttp import web

from ..db.embedded import database_dsn
from ..db.migrate import prepare_database
from ..settings import Settings
from ..signals import wait_for_stop_signal
from .app import create_app
from .http.runner import DashboardRunner

__all__ = [
    "freeze_startup_objects",
    "run_server",
    "serve_app",
]

log = structlog.get_logger("zapjobs_sse.server.run")


@asynccontextmanager
async def serve_app(settings: Settings) -> AsyncIterator[str]:
    """Serve create_app(settings) until the block ends; yields the dashboard URL."""
    app = create_app(settings)
    runner = DashboardRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=settings.shutdown_grace,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = _bound_address(runner)
        yield f"http://{host}:{port}{settings.normalized_base_path}/"
    finally:
        await runner.cleanup()


def freeze_startup_objects() -> None:
    """Keep what the server allocated to start (modules, templates, the app) out of
    Python's garbage collector: a full collection walks every tracked object, and with
    thousands of open streams each walk would otherwise pause all of them for longer."""
    gc.collect()
    gc.freeze()


def _bound_address(runner: web.AppRunner) -> tuple[str, int]:
    server = runner.addresses[0]
    host, port = server[0], server[1]
    return (f"[{host}]" if ":" in host else host), port


async def run_server(
    settings: Settings, *, until: Callable[[], asyncio.Future[None]] | None = None
) -> None:
    """Migrate, check the feed and serve until a stop signal (or `until` completes)."""
    async with database_dsn(settings) as dsn:
        await prepare_database(dsn, feed=settings.feed)
        async with serve_app(dataclasses.replace(settings, dsn=dsn)) as url:
            freeze_startup_objects()
            log.info("server_started", url=url)
            print(f"zapjobs-sse: dashboard at {url}  (events: {url}events)", flush=True)
            await (until() if until is not None else wait_for_stop_signal())
            log.info("server_stopping")
