"""{base}/health (the process is alive) and {base}/ready (it can serve live data)."""

from __future__ import annotations

from aiohttp import web

from .app_keys import BRIDGE, DATABASE
from .db import DatabaseError

__all__ = ["NOTIFY_QUEUE_THRESHOLD", "health", "ready"]

# Above this share of the NOTIFY queue, a listener somewhere is not keeping up and
# writers will start failing when it is full: report not-ready long before that.
NOTIFY_QUEUE_THRESHOLD = 0.5


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    checks: dict[str, object] = {"listening": bridge.listening.is_set()}
    ok = bool(checks["listening"])
    try:
        usage = await request.app[DATABASE].notification_queue_usage()
        checks["database"] = "ok"
        checks["notificationQueueUsage"] = usage
        ok = ok and usage < NOTIFY_QUEUE_THRESHOLD
    except DatabaseError as error:
        checks["database"] = str(error)
        ok = False
    return web.json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )
