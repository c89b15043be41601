"""Security headers on every response, and CORS for the configured origins only.

The Content-Security-Policy allows no inline script or style: every script is a file
under {base}/static, so markup that slips into a page through job data cannot run.
Cross-origin reads (an EventSource with `withCredentials` on another origin, a fetch of
the API) are allowed only for the origins in --cors-origins, each named exactly: the
answer never says `*`, so credentials never go to an origin nobody configured.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import istr

from ..keys import SETTINGS
from .errors import answered

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "cors_preflight",
    "setup_security",
]

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)

# The names are istr, like aiohttp's own in `hdrs`: a plain str name costs each response
# a lower-cased copy when added and an istr copy when the headers are written, kept as
# long as the response (about 1 KB per open stream).
SECURITY_HEADERS: Final = {
    istr("Content-Security-Policy"): CONTENT_SECURITY_POLICY,
    istr("X-Content-Type-Options"): "nosniff",
    istr("X-Frame-Options"): "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on a
    # form POST, and the sign-in form's CSRF check needs the real origin.
    istr("Referrer-Policy"): "same-origin",
    istr("Cross-Origin-Opener-Policy"): "same-origin",
    istr("Cross-Origin-Resource-Policy"): "same-origin",
}

CORS_MAX_AGE: Final = "600"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return None
    allowed: frozenset[str] = request.app[_CORS_ORIGINS]
    return origin if origin.lower() in allowed else None


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = "Retry-After, WWW-Authenticate"
    if request.app[_CORS_ORIGINS]:
        # The answer depends on the origin: shared caches must keep one per origin.
        vary = response.headers.get(hdrs.VARY)
        if vary is None:
            response.headers[hdrs.VARY] = "Origin"
        elif "origin" not in vary.lower():
            response.headers[hdrs.VARY] = f"{vary}, Origin"


@web.middleware
def cors_preflight(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Answer a CORS preflight from an allowed origin (before authentication: it has none).

    A plain function that returns the handler's awaitable instead of a coroutine that
    awaits it: a coroutine's frame would stay alive as long as each open stream.
    """
    if (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        and _allowed_origin(request) is not None
    ):
        return answered(
            web.Response(
                status=204,
                headers={
                    hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, HEAD",
                    hdrs.ACCESS_CONTROL_ALLOW_HEADERS: "Authorization, Last-Event-ID",
                    hdrs.ACCESS_CONTROL_MAX_AGE: CORS_MAX_AGE,
                },
            )
        )
    return handler(request)


_CORS_ORIGINS = web.AppKey("cors_origins", frozenset[str])


def setup_security(app: web.Application) -> None:
    """Headers on every response of the app (the preflight middleware is `cors_preflight`)."""
    app[_CORS_ORIGINS] = frozenset(app[SETTINGS].cors_origin_list)
    app.on_response_prepare.append(_add_headers)
