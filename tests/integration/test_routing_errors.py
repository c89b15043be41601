"""What the server answers outside its routes: unknown paths, wrong methods, missing static
files, requests too long to read, and HEAD on the stream."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import pytest

from tests.conftest import RunningServer
from zapjobs_sse.server.http.runner import MAX_HEADER_FIELD, MAX_REQUEST_LINE

MARKER = b"PRIVATE-MARKER-"


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
    assert head.split(b"\r\n")[0].endswith(status), head
    assert MARKER not in answered and b"PRIVATE" not in answered
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"error": error}
    # A URL just within the limit is read.
    fits = b"GET /zapjobs/api/runs?job_type=" + b"x" * 200 + b" HTTP/1.1\r\nHost: x\r\n"
    assert b" 200 OK" in (await raw_exchange(server, fits + b"Connection: close\r\n\r\n"))[:20]
