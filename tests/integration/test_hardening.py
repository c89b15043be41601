"""Security headers, CORS, and the limits that keep greedy or hostile clients in check."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.support import Writer, sse_connect
from zapjobs_sse.server.http.security import CONTENT_SECURITY_POLICY

TOKEN = "tok-" + "a1b2c3d4" * 4
OTHER_TOKEN = "tok-" + "e5f6a7b8" * 4
TRUSTED = "https://app.example"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_security_headers(headers: Any, what: str) -> None:
    csp = headers.get("Content-Security-Policy", "")
    assert csp == CONTENT_SECURITY_POLICY, what
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for directive in ("script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), what


@pytest.mark.parametrize(
    "server_settings", [{"auth": "token", "tokens": TOKEN, "login_attempts_per_minute": 100}]
)
async def test_every_kind_of_response_carries_the_security_headers(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    cases: list[tuple[str, dict[str, str], int]] = [
        ("", bearer(TOKEN), 200),
        ("runs", bearer(TOKEN), 200),
        ("api/stats", bearer(TOKEN), 200),
        ("api/runs?limit=x", bearer(TOKEN), 400),
        (f"api/runs/{uuid.uuid4()}", bearer(TOKEN), 404),
        ("no-such-page", bearer(TOKEN), 404),
        ("api/stats", {}, 401),
        ("runs", {"Accept": "text/html"}, 303),
        ("login", {}, 200),
        ("static/dashboard.css", {}, 200),
        ("health", {}, 200),
    ]
    for relative, headers, status in cases:
        async with http.get(
            server.path(relative), headers=headers, allow_redirects=False
        ) as response:
            assert response.status == status, relative
            assert_security_headers(response.headers, relative)
    async with sse_connect(http, server.path("events"), headers=bearer(TOKEN)) as client:
        assert_security_headers(client.response.headers, "events")


@pytest.mark.parametrize(
    "server_settings", [{"cors_origins": f"{TRUSTED}, https://other.example:8443"}]
)
async def test_cors_names_only_configured_origins_and_never_a_wildcard(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.path("api/stats"), headers={"Origin": TRUSTED}) as response:
        assert response.headers["Access-Control-Allow-Origin"] == TRUSTED
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Origin" in response.headers["Vary"]
    async with sse_connect(http, server.path("events"), headers={"Origin": TRUSTED}) as client:
        assert client.response.headers["Access-Control-Allow-Origin"] == TRUSTED
        assert client.response.headers["Access-Control-Allow-Credentials"] == "true"
    for origin in ("https://evil.example", "null", "https://app.example.evil.example"):
        async with http.get(server.path("api/stats"), headers={"Origin": origin}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers, origin
            assert "Access-Control-Allow-Credentials" not in response.headers
    preflight = {"Origin": TRUSTED, "Access-Control-Request-Method": "GET"}
    async with http.options(server.path("api/stats"), headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == TRUSTED
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    evil_preflight = preflight | {"Origin": "https://evil.example"}
    async with http.options(server.path("api/stats"), headers=evil_preflight) as response:
        assert response.status != 204
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_no_cors_without_configured_origins(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.path("api/stats"), headers={"Origin": TRUSTED}) as response:
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("server_settings", [{"max_streams_per_identity": 2}])
async def test_stream_over_the_per_identity_limit_gets_429_and_the_others_keep_streaming(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with (
        sse_connect(http, server.path("events")) as first,
        sse_connect(http, server.path("events")) as second,
    ):
        await first.wait_named("StatsUpdated")
        await second.wait_named("StatsUpdated")
        async with http.get(server.path("events")) as refused:
            assert refused.status == 429
            assert int(refused.headers["Retry-After"]) > 0
            assert "streams" in (await refused.json())["error"]
            assert_security_headers(refused.headers, "429")
        run_id = await writer.insert_run("after-refusal")
        for client in (first, second):
            await client.wait_for(
                lambda events: any(
                    e.name == "JobRunUpdated" and e.json()["id"] == run_id for e in events
                ),
                what="the run update on an admitted stream",
            )
            assert not client.closed
    # Slots are given back when streams end.
    await _until_admitted(http, server.path("events"), {})


async def _until_admitted(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float = 5.0
) -> None:
    async with asyncio.timeout(timeout):
        while True:
            async with http.get(url, headers=headers) as response:
                if response.status == 200:
                    return
                assert response.status == 429
            await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "server_settings",
    [{"auth": "token", "tokens": f"{TOKEN},{OTHER_TOKEN}", "max_streams": 2}],
)
async def test_total_stream_limit_counts_every_identity(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with (
        sse_connect(http, server.path("events"), headers=bearer(TOKEN)) as first,
        sse_connect(http, server.path("events"), headers=bearer(OTHER_TOKEN)) as second,
    ):
        await first.wait_named("StatsUpdated")
        await second.wait_named("StatsUpdated")
        for token in (TOKEN, OTHER_TOKEN):
            async with http.get(server.path("events"), headers=bearer(token)) as refused:
                assert refused.status == 429
        # Pages and the API are not streams: they still answer.
        async with http.get(server.path("api/stats"), headers=bearer(TOKEN)) as response:
            assert response.status == 200
    await _until_admitted(http, server.path("events"), bearer(TOKEN))


@pytest.mark.parametrize("server_settings", [{"max_filters": 3}])
async def test_oversized_input_is_a_4xx(server: RunningServer, http: aiohttp.ClientSession) -> None:
    long_value = "j" * 256
    for relative in (
        f"events?job_type={long_value}",
        f"events?last_event_id={long_value}",
        f"api/runs?job_type={long_value}",
        "events?job_type=a&job_type=b&job_type=c&job_type=d",
    ):
        async with http.get(server.path(relative)) as response:
            assert response.status == 400, relative
            assert "error" in await response.json()
    async with http.get(server.path("events"), headers={"Last-Event-ID": long_value}) as response:
        assert response.status == 400


@pytest.mark.parametrize("server_settings", [{"auth": "token", "tokens": TOKEN}])
async def test_request_bodies_are_bounded(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    origin = server.url.split("/zapjobs/")[0]
    async with http.post(
        server.path("login"), data={"token": "x" * 100_000}, headers={"Origin": origin}
    ) as response:
        assert response.status == 413
