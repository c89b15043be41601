"""The AppRunner of the server: requests that cannot be read get a short JSON answer.

aiohttp answers a request it cannot parse before any route or middleware sees it, with a
400 whose text quotes what it read ("Got more than 8190 bytes when reading: b'...'"): a
piece of a URL or of a header (a cookie, a token) sent back and logged as an error with a
traceback. Here an over-long URL is a 414, an over-long header a 431, anything else
unreadable a 400, each with a fixed message and the security headers, logged as one line
that names the status only.
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from .security import SECURITY_HEADERS

__all__ = ["MAX_HEADER_FIELD", "MAX_REQUEST_LINE", "DashboardRunner", "unreadable_answer"]

log = structlog.get_logger("zapjobs_sse.server.http.runner")

# The longest request line (8 KiB, as nginx's buffers) and header field (name and value:
# 8190 bytes, aiohttp's and Apache's default). They differ on purpose: LineTooLong says
# nothing but the limit it hit, and the limit is what tells a long URL from a long header.
MAX_REQUEST_LINE: Final = 8192
MAX_HEADER_FIELD: Final = 8190


def unreadable_answer(error: HttpProcessingError) -> web.Response:
    """The answer to a request that aiohttp's parser refused; it quotes nothing of it."""
    if isinstance(error, LineTooLong) and error.args[1:2] == (MAX_REQUEST_LINE,):
        status, message = 414, f"the URL is longer than {MAX_REQUEST_LINE} bytes"
    elif isinstance(error, LineTooLong):
        status, message = 431, f"a header field is longer than {MAX_HEADER_FIELD} bytes"
    else:
        status, message = 400, "malformed HTTP request"
    response = web.json_response({"error": message}, status=status)
    response.headers.update(SECURITY_HEADERS)
    return response


class _RequestHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        response = unreadable_answer(exc)
        log.info("request_unreadable", status=response.status, error=type(exc).__name__)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _RequestHandler(self, loop=self._loop, **self._kwargs)


class DashboardRunner(web.AppRunner):
    """web.AppRunner whose connections read requests within MAX_REQUEST_LINE and
    MAX_HEADER_FIELD and answer unreadable ones with unreadable_answer."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        limits = {"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_HEADER_FIELD}
        super().__init__(app, **(kwargs | limits))

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the application
        kwargs: dict[str, Any] = made._kwargs
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **kwargs,
        )
