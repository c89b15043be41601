"""create_app(): wires database, broker, bridge, stats and routes into one aiohttp app."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import MatchInfoError

from ..db import Database, DatabaseError, DatabaseUnavailable
from ..settings import Settings
from .http.actions import setup_actions
from .http.api import setup_api
from .http.auth.authenticator import authenticate
from .http.auth.signin import setup_auth
from .http.errors import answered, json_error
from .http.health import health, ready
from .http.insights import INSIGHTS, InsightsCache
from .http.limits import STREAM_LIMITER, StreamLimiter
from .http.metrics import METRICS, Metrics, metrics_endpoint
from .http.pages import error_page, setup_pages
from .http.security import cors_preflight, setup_security
from .http.stream import stream_events
from .keys import BRIDGE, BROKER, DATABASE, HOURS, LOGS, PUBLIC_PATHS, SETTINGS, STATS
from .live.bridge import Bridge
from .live.broker import Broker
from .live.logs import LogFollowing
from .live.rollups import RunHours
from .live.stats import StatsCoalescer
from .live.workers import WorkerWatch

__all__ = ["create_app"]

log = structlog.get_logger("zapjobs_sse.server.app")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id on every log line of the request; unexpected errors become JSON."""
    request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers.setdefault("X-Request-ID", request_id)
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away first (nginx's code for it)
        raise
    except DatabaseUnavailable as error:
        status = 503
        log.warning("database_unavailable", path=request.path, error=str(error))
        return json_error(503, "database unavailable", **{"Retry-After": "5"})
    except DatabaseError as error:
        log.error("database_error", path=request.path, error=str(error))
        return json_error(500, "database error")
    finally:
        if request.app[SETTINGS].access_log:
            log.info(
                "request_handled",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
def routing_errors(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """What the router answers by itself (no route for the path, not that method, no such
    static file) in the app's own forms instead of aiohttp's bare text: a JSON error for
    the API, the stream and the probes, the styled error page for everything else.

    Inside `authenticate`: without credentials an unknown path is refused like any other.
    A plain function, like security.cors_preflight (no frame kept per open stream).
    """
    match_info = request.match_info
    if isinstance(match_info, MatchInfoError):
        return answered(_routing_error(request, match_info.http_exception))
    resource = match_info.route.resource
    if isinstance(resource, web.StaticResource) and not _static_file_exists(
        resource, match_info.get("filename", "")
    ):
        # Not aiohttp's empty 404 typed application/octet-stream.
        return answered(web.Response(status=404, text="404: no such file\n"))
    return handler(request)


def _routing_error(request: web.Request, error: web.HTTPException) -> web.Response:
    allow = error.headers.get(hdrs.ALLOW)
    headers = {hdrs.ALLOW: allow} if allow is not None else {}
    methods = (allow or "").replace(",", ", ")
    base = request.app[SETTINGS].normalized_base_path
    path = request.path
    if path == f"{base}/api" or path.startswith(f"{base}/api/") or path in _not_pages(base):
        if error.status == 405:
            message = f"method not allowed: {request.method}; this endpoint takes {methods}"
        else:
            message = f"not found: no endpoint at this path (see {base}/api/openapi.json)"
        return json_error(error.status, message, **headers)
    if error.status == 405:
        message = f"This page does not answer {request.method} requests, only {methods}."
    else:
        message = "There is no page at this address."
    response = error_page(request, error.status, message)
    response.headers.update(headers)
    return response


def _not_pages(base: str) -> frozenset[str]:
    """The routes outside {base}/api that answer JSON (or text), not pages."""
    return frozenset(f"{base}/{name}" for name in ("events", "health", "ready", "metrics"))


def _static_file_exists(resource: web.StaticResource, filename: str) -> bool:
    """Whether the static route has this file (a stat: the files are few and cached)."""
    directory = Path(resource.get_info()["directory"])
    try:
        path = (directory / filename).resolve()
    except (OSError, ValueError, RuntimeError):
        return False
    return path.is_relative_to(directory) and path.is_file()


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[DATABASE] = await Database.open(settings.dsn or "", size=settings.pool_size)
    yield
    await app[DATABASE].close()


async def _live(app: web.Application) -> AsyncIterator[None]:
    """The stats coalescer, the worker watch and the bridge, as background tasks."""
    settings = app[SETTINGS]
    database, broker = app[DATABASE], app[BROKER]
    stats = app[STATS] = StatsCoalescer(
        database,
        broker,
        interval=settings.stats_interval,
        refresh=settings.stats_refresh,
        exact_limit=settings.stats_exact_limit,
    )
    workers = WorkerWatch(broker, settings.worker_stale_after)
    following = app[LOGS] = LogFollowing(broker, database)
    hours = app[HOURS] = RunHours(database, interval=settings.rollup_interval)
    app[INSIGHTS] = InsightsCache(database, hours)
    bridge = app[BRIDGE] = Bridge(
        settings.dsn or "",
        database,
        broker,
        following,
        stats,
        workers,
        hours,
        check_interval=settings.db_check_interval,
        check_timeout=settings.db_check_timeout,
        max_backoff=settings.reconnect_max_delay,
        on_delay=app[METRICS].observe_delay,
        queue_warning=settings.notify_queue_threshold,
        feed=settings.feed,
    )
    try:
        await stats.compute()
    except DatabaseError as error:
        log.warning("stats_initial_failed", error=str(error))
    tasks = [
        asyncio.create_task(bridge.run(), name="bridge"),
        asyncio.create_task(stats.run(), name="stats"),
        asyncio.create_task(workers.run(), name="workers"),
        asyncio.create_task(hours.run(), name="rollups"),
    ]
    # Accept connections once the feed (LISTEN, or the replication stream) is in place
    # (or, if the database is slow to answer, after a bounded wait: /ready then says not
    # ready, and streams get resync).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(settings.db_check_timeout):
            await bridge.listening.wait()
    yield
    await _cancel_all(tasks, settings.shutdown_grace)


async def _cancel_all(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Cancel and wait; cancel again while any survives (asyncio.wait_for in Python 3.11,
    used inside aiopg, can swallow a cancellation that races with a finishing query)."""
    pending = set(tasks)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    if pending:
        log.warning("background_tasks_stuck", tasks=sorted(t.get_name() for t in pending))


async def _end_streams(app: web.Application) -> None:
    app[BROKER].close_all("shutdown")


def create_app(settings: Settings) -> web.Application:
    """The whole server for these settings (settings.dsn set, or libpq defaults)."""
    app = web.Application(
        # Authentication guards every route, including any added later; see http/auth/.
        middlewares=[request_context, cors_preflight, authenticate, routing_errors],
        client_max_size=64 * 1024,
    )
    app[SETTINGS] = settings
    setup_security(app)
    setup_auth(app)
    app[STREAM_LIMITER] = StreamLimiter(settings.max_streams, settings.max_streams_per_identity)
    app[BROKER] = Broker(
        replay_events=settings.replay_events,
        client_buffer_bytes=settings.client_buffer_bytes,
    )
    app.cleanup_ctx.extend([_database, _live])
    app.on_shutdown.append(_end_streams)
    base = settings.normalized_base_path
    app.router.add_get(f"{base}/events", stream_events, name="events")
    app.router.add_get(f"{base}/health", health, name="health")
    app.router.add_get(f"{base}/ready", ready, name="ready")
    setup_api(app)
    setup_actions(app)
    setup_pages(app)
    app[METRICS] = Metrics(app)
    app.router.add_get(f"{base}/metrics", metrics_endpoint, name="metrics")
    public = {f"{base}/health", f"{base}/ready"} if settings.health_open else set()
    if settings.metrics_open:
        public.add(f"{base}/metrics")
    app[PUBLIC_PATHS] = frozenset(public)
    return app
