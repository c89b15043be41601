"""What the server answers outside its routes: unknown paths, wrong methods, missing static
files, requests too long to read, and HEAD on the stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import RunningServer
from zapjobs_sse.server.http.runner import MAX_HEADER_FIELD, MAX_REQUEST_LINE

TOKEN = "tok-" + "a1b2c3d4" * 4
HTML = {"Accept": "text/html"}
MARKER = b"PRIVATE-MARKER-"


async def answer(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[aiohttp.ClientResponse, str]:
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        return response, await response.text()


def assert_styled_page(response: aiohttp.ClientResponse, text: str, heading: str) -> None:
    assert response.content_type == "text/html", text[:200]
    assert f"<h1>{heading}</h1>" in text
    assert 'href="/zapjobs/static/dashboard.css"' in text
    assert 'id="go-to-run-id"' in text  # the header, with its box


@pytest.mark.parametrize(
    "path", ["nonexistent", "runs/", "jobs/x/y/z", "runs/go/x", "../favicon.ico"]
)
async def test_an_unknown_page_is_the_styled_404(
    server: RunningServer, http: aiohttp.ClientSession, path: str
) -> None:
    response, text = await answer(http, "GET", server.path(path))
    assert response.status == 404
    assert_styled_page(response, text, "404 Not found")
    assert "no page at this address" in text


@pytest.mark.parametrize("path", ["api/x", "api/runs/x/y", "api/", "api"])
async def test_an_unknown_api_path_is_a_json_404(
    server: RunningServer, http: aiohttp.ClientSession, path: str
) -> None:
    response, text = await answer(http, "GET", server.path(path))
    assert response.status == 404 and response.content_type == "application/json", text
    assert json.loads(text)["error"].startswith("not found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "api/stats", "GET,HEAD"),
        ("DELETE", "api/runs", "GET,HEAD"),
        ("PUT", "events", "GET,HEAD"),
        ("POST", "health", "GET,HEAD"),
        ("POST", "runs", "GET,HEAD"),
        ("PATCH", "", "GET,HEAD"),
        ("PUT", "login", "GET,HEAD,POST"),
    ],
)
async def test_a_wrong_method_is_405_with_allow_in_the_form_of_the_route(
    server: RunningServer, http: aiohttp.ClientSession, method: str, path: str, allow: str
) -> None:
    response, text = await answer(http, method, server.path(path))
    assert response.status == 405, text
    assert response.headers["Allow"] == allow
    if path.startswith("api/") or path in ("events", "health"):
        assert response.content_type == "application/json", text
        assert json.loads(text)["error"] == (
            f"method not allowed: {method}; this endpoint takes {allow.replace(',', ', ')}"
        )
    else:
        assert_styled_page(response, text, "405 Method not allowed")


async def test_the_openapi_document_describes_these_answers(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    _, text = await answer(http, "GET", server.path("api/openapi.json"))
    spec = json.loads(text)
    responses = spec["components"]["responses"]
    assert set(responses) >= {"NotFound", "MethodNotAllowed", "RequestTooLong"}
    assert "Allow" in responses["MethodNotAllowed"]["headers"]
    for name in ("NotFound", "MethodNotAllowed", "RequestTooLong"):
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
        assert name in spec["info"]["description"]
    assert str(MAX_REQUEST_LINE) in spec["info"]["description"]
    assert str(MAX_HEADER_FIELD) in spec["info"]["description"]


async def test_head_on_the_stream_answers_its_headers_without_a_body(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(5):  # a GET would stream until the server stops
        response, text = await answer(http, "HEAD", server.path("events?topics=runs"))
    assert response.status == 200 and text == ""
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    # The same checks of the query as GET.
    response, _ = await answer(http, "HEAD", server.path("events?run=not-a-uuid"))
    assert response.status == 400 and response.content_type == "application/json"
    # HEAD opens nothing: the process's stream count stays at zero.
    _, metrics = await answer(http, "GET", server.path("metrics"))
    assert "\nzapjobs_sse_open_streams 0.0\n" in metrics


async def test_a_missing_static_file_is_a_404_typed_as_text(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for path in ("static/nope.js", "static/", "static", "static/dashboard.css/x"):
        response, text = await answer(http, "GET", server.path(path))
        assert response.status == 404, path
        assert response.content_type == "text/plain" and "no such file" in text, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    response, _ = await answer(http, "GET", server.path("static/dashboard.css"))
    assert response.status == 200 and response.content_type == "text/css"


async def raw_exchange(server: RunningServer, request: bytes) -> bytes:
    """Send bytes as they are and read the answer until the server closes."""
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (
            b"GET /zapjobs/runs?job_type=" + MARKER * (MAX_REQUEST_LINE // len(MARKER) + 10) + b" "
            b"HTTP/1.1\r\nHost: x\r\n\r\n",
            b"414 Request-URI Too Long",
            f"the URL is longer than {MAX_REQUEST_LINE} bytes",
        ),
        (
            b"GET /zapjobs/ HTTP/1.1\r\nHost: x\r\nCookie: "
            + MARKER * (MAX_HEADER_FIELD // len(MARKER) + 10)
            + b"\r\n\r\n",
            b"431 Request Header Fields Too Large",
            f"a header field is longer than {MAX_HEADER_FIELD} bytes",
        ),
        (
            b"GET /zapjobs/ HTTP/1.1\r\nHost: x\r\n"
            + MARKER * (MAX_HEADER_FIELD // len(MARKER) + 10)
            + b": x\r\n\r\n",
            b"431 Request Header Fields Too Large",
            f"a header field is longer than {MAX_HEADER_FIELD} bytes",
        ),
        (
            b"GET /zapjobs/ HTTP/1.1\r\nHost: x\r\n" + MARKER + b"\x01: x\r\n\r\n",
            b"400 Bad Request",
            "malformed HTTP request",
        ),
    ],
    ids=["url", "header-value", "header-name", "malformed"],
)
async def test_a_request_too_long_to_read_is_refused_without_echoing_it(
    server: RunningServer, request_bytes: bytes, status: bytes, error: str
) -> None:
    answered = await raw_exchange(server, request_bytes)
    head, _, body = answered.partition(b"\r\n\r\n")
    # The code; the reason phrase is Python's own (3.13 says "URI Too Long").
    assert head.split(b"\r\n")[0].split(b" ")[1] == status.split(b" ")[0], head
    assert MARKER not in answered and b"PRIVATE" not in answered
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"error": error}
    # A URL just within the limit is read.
    fits = b"GET /zapjobs/api/runs?job_type=" + b"x" * 200 + b" HTTP/1.1\r\nHost: x\r\n"
    assert b" 200 OK" in (await raw_exchange(server, fits + b"Connection: close\r\n\r\n"))[:20]


@pytest.mark.parametrize(
    "server_settings", [{"auth": "token", "tokens": TOKEN, "login_attempts_per_minute": 100}]
)
async def test_without_credentials_unknown_paths_and_methods_are_refused_first(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for method, path in (("GET", "nonexistent"), ("GET", "api/x"), ("POST", "api/stats")):
        response, text = await answer(http, method, server.path(path))
        assert response.status == 401 and json.loads(text)["error"], (method, path)
    response, _ = await answer(http, "GET", server.path("nonexistent"), headers=HTML)
    assert response.status == 303
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    response, text = await answer(http, "GET", server.path("nonexistent"), headers=bearer)
    assert response.status == 404
    assert_styled_page(response, text, "404 Not found")
    response, text = await answer(http, "POST", server.path("api/stats"), headers=bearer)
    assert response.status == 405 and json.loads(text)["error"].startswith("method not allowed")
