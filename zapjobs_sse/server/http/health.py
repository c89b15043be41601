"""{base}/health (the process is alive) and {base}/ready (it can serve live data).

Both answer JSON and need no authentication, so that Kubernetes probes and Docker's
HEALTHCHECK can call them. /health never touches the database: a database outage must
not get healthy processes restarted. /ready is 503 while the process cannot deliver
live events (traffic should go to another replica).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from ...db import DatabaseError
from ..keys import BRIDGE, DATABASE, SETTINGS

__all__ = ["READY_DATABASE_TIMEOUT", "health", "ready"]

log = structlog.get_logger("zapjobs_sse.server.http.health")

# A probe has its own timeout (Kubernetes: 1 s by default); answer before it.
READY_DATABASE_TIMEOUT = 0.8

_NO_STORE = {"Cache-Control": "no-store"}


async def health(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"}, headers=_NO_STORE)


async def ready(request: web.Request) -> web.Response:
    """Database reachable, bridge listening, NOTIFY queue usage below the threshold."""
    threshold = request.app[SETTINGS].notify_queue_threshold
    checks: dict[str, object] = {}
    ok = True
    try:
        # The bound covers waiting for a pool connection too, not only the query.
        async with asyncio.timeout(READY_DATABASE_TIMEOUT):
            usage = await request.app[DATABASE].notification_queue_usage(
                timeout=READY_DATABASE_TIMEOUT
            )
    except (DatabaseError, TimeoutError) as error:
        # The details (host, user) go to the log, not to an unauthenticated probe.
        log.warning("ready_database_unreachable", error=str(error) or "timeout")
        checks["database"] = "unreachable"
        ok = False
    else:
        checks["database"] = "ok"
        checks["notifyQueue"] = "ok" if usage < threshold else "above_threshold"
        checks["notifyQueueUsage"] = usage
        checks["notifyQueueThreshold"] = threshold
        ok = ok and usage < threshold
    # Read last: the answer tells the bridge's state when it is sent, not before the wait.
    listening = request.app[BRIDGE].listening.is_set()
    checks["bridge"] = "listening" if listening else "not_listening"
    ok = ok and listening
    return web.json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks},
        status=200 if ok else 503,
        headers=_NO_STORE,
    )
