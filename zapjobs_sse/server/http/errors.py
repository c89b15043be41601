"""JSON error responses: every 4xx names what is wrong."""

from __future__ import annotations

from typing import NoReturn

from aiohttp import web

__all__ = ["answered", "bad_request", "json_error", "not_found", "unavailable"]


def json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def bad_request(message: str) -> NoReturn:
    raise web.HTTPBadRequest(
        text=web.json_response({"error": message}).text, content_type="application/json"
    )


def not_found(message: str) -> NoReturn:
    raise web.HTTPNotFound(
        text=web.json_response({"error": message}).text, content_type="application/json"
    )


def unavailable(message: str) -> NoReturn:
    raise web.HTTPServiceUnavailable(
        text=web.json_response({"error": message}).text, content_type="application/json"
    )


async def answered(response: web.StreamResponse) -> web.StreamResponse:
    """A response ready now, as the awaitable a pass-through middleware returns (see
    security.cors_preflight for why those middlewares are not coroutines)."""
    return response
