"""Property-based fuzzing of every query parameter of every route: 4xx at worst, never 5xx."""

from __future__ import annotations

import asyncio
import http.client
import json
import string
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer
from tests.routes import RouteRequest, route_requests
from tests.support import Writer

TOKEN = "tok-" + "a1b2c3d4" * 4

# Every query parameter some route reads (README "Events" and "JSON API", the login page's next).
PARAMETERS = (
    "run",
    "job_type",
    "topics",
    "last_event_id",
    "logs_after",
    "status",
    "before",
    "after",
    "limit",
    "level",
    "id",
    "next",
    "q",
    "queue",
)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

plausible_values = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1",
            "500",
            "99999999999999999999999",
            "1e3",
            "NaN",
            "stats,runs,workers",
            "stats,,nope",
            "Failed",
            "Running",
            "Error",
            "email",
            "00000000-0000-0000-0000-000000000000",
            "abc-1",
            "deadbeef-12",
            "2026-11-28T10:00:00.000000Z_00000000-0000-0000-0000-000000000000",
            "//evil.example",
            "/zapjobs/runs",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "\x00",
            "\u202e\ufeff",
            "%00",
        ]
    ),
    st.uuids().map(str),
    st.text(max_size=40),
    st.text(alphabet=string.printable, min_size=200, max_size=300),
)

queries = st.lists(
    st.tuples(st.sampled_from(PARAMETERS) | st.text(max_size=10), plausible_values),
    max_size=6,
)


def _fetch(url: str, path_qs: str, headers: dict[str, str]) -> int:
    """Status of one GET; the body (an endless stream, maybe) is not read."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", path_qs, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def _fuzz_routes(url: str, routes: list[RouteRequest], headers: dict[str, str]) -> None:
    @FUZZ
    @given(
        route=st.sampled_from(routes),
        query=queries,
        raw=st.text(alphabet=string.ascii_letters + string.digits + "%&=+;,/?:@!$'()*-._~[]"),
        use_raw=st.booleans(),
        odd_id=st.none() | st.text(min_size=1, max_size=70),
        html=st.booleans(),
    )
    def check(
        route: RouteRequest,
        query: list[tuple[str, str]],
        raw: str,
        use_raw: bool,
        odd_id: str | None,
        html: bool,
    ) -> None:
        path = route.path
        if route.formatter is not None and odd_id is not None:
            path = route.formatter.format(id=quote(odd_id, safe=""))
        path_qs = f"{path}?{raw if use_raw else urlencode(query)}"
        accept = {"Accept": "text/html" if html else "*/*"}
        status = _fetch(url, path_qs, headers | accept)
        assert status < 500, f"{status} GET {path_qs}"

    check()


def _fuzzed_routes(**overrides: Any) -> list[RouteRequest]:
    return [route for route in route_requests(**overrides) if route.method in ("GET", "*")]


@pytest.mark.parametrize("server_settings", [{"max_streams_per_identity": 1000}])
async def test_every_query_parameter_of_every_route_is_a_4xx_at_worst(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await writer.insert_run("email", status=4)
    await writer.insert_logs(run_id, ["one", "two"])
    routes = _fuzzed_routes()
    assert {"events", "api_runs", "api_run_logs", "page_run", "login"} <= {r.name for r in routes}
    # Some real ids, so that valid-looking queries reach the database too.
    routes += [
        RouteRequest("GET", f"/zapjobs/runs/{run_id}", "page_run"),
        RouteRequest("GET", f"/zapjobs/api/runs/{run_id}/logs", "api_run_logs"),
    ]
    await asyncio.to_thread(_fuzz_routes, server.url, routes, {})


AUTH_SETTINGS = {"auth": "token", "tokens": TOKEN, "login_attempts_per_minute": 100000}


@pytest.mark.parametrize("server_settings", [AUTH_SETTINGS | {"max_streams_per_identity": 1000}])
async def test_fuzzed_queries_behind_authentication_are_a_4xx_at_worst(
    server: RunningServer,
) -> None:
    routes = _fuzzed_routes(**AUTH_SETTINGS)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    await asyncio.to_thread(_fuzz_routes, server.url, routes, bearer)


@pytest.mark.parametrize("server_settings", [AUTH_SETTINGS])
async def test_fuzzed_credentials_are_refused_never_a_5xx(server: RunningServer) -> None:
    printable = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=600)

    @FUZZ
    @given(authorization=printable, cookie=printable, user=printable)
    def check(authorization: str, cookie: str, user: str) -> None:
        headers = {
            "Authorization": authorization,
            "Cookie": f"zapjobs_session={quote(cookie)}",
            "X-Forwarded-User": user,
        }
        if not authorization.strip():
            del headers["Authorization"]
        status = _fetch(server.url, "/zapjobs/api/stats", headers)
        assert status in (400, 401), (status, headers)

    await asyncio.to_thread(check)


def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


# Names a POST body of some route reads: the sign-in form, the actions' forms and JSON.
FIELDS = ("token", "next", "csrf", "input", "status", "job_type", "idempotency_key", "confirm")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    st.lists(st.tuples(st.sampled_from(FIELDS), plausible_values), max_size=5).map(
        lambda fields: ("application/x-www-form-urlencoded", urlencode(fields).encode())
    ),
    json_values.map(lambda value: ("application/json", json.dumps(value).encode())),
    st.binary(max_size=300).map(lambda raw: ("application/json", raw)),
    st.binary(max_size=300).map(lambda raw: ("application/x-www-form-urlencoded", raw)),
    st.binary(max_size=300).map(lambda raw: ("text/plain", raw)),
)


def _fuzz_posts(url: str, routes: list[RouteRequest], headers: dict[str, str]) -> None:
    @FUZZ
    @given(
        route=st.sampled_from(routes),
        body=bodies,
        odd_id=st.none() | st.text(min_size=1, max_size=70),
        origin=st.sampled_from([None, url.rstrip("/").rsplit("/", 1)[0], "https://evil.example"]),
    )
    def check(
        route: RouteRequest, body: tuple[str, bytes], odd_id: str | None, origin: str | None
    ) -> None:
        path = route.path
        if route.formatter is not None and odd_id is not None:
            path = route.formatter.format(id=quote(odd_id, safe=""))
        content_type, data = body
        sent = headers | {"Content-Type": content_type}
        if origin is not None:
            sent["Origin"] = origin
        status = _post(url, path, data, sent)
        assert status < 500, f"{status} POST {path} {content_type} {data!r}"

    check()


def _posted_routes(**overrides: Any) -> list[RouteRequest]:
    return [route for route in route_requests(**overrides) if route.method in ("POST", "*")]


@pytest.mark.parametrize("server_settings", [AUTH_SETTINGS])
async def test_every_post_body_of_every_route_is_a_4xx_at_worst(server: RunningServer) -> None:
    routes = _posted_routes(**AUTH_SETTINGS)
    assert {"login", "logout"} <= {r.name for r in routes}
    await asyncio.to_thread(_fuzz_posts, server.url, routes, {})
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    await asyncio.to_thread(_fuzz_posts, server.url, routes, bearer)
