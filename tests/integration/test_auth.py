"""Authentication of pages, API and stream on a real server (token and proxy modes)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import structlog
from aiohttp import web

from tests.conftest import RunningServer, make_settings
from tests.routes import route_requests
from tests.support import SSEClient, sse_connect
from zapjobs_sse.server.app import create_app
from zapjobs_sse.server.http.auth.sessions import SESSION_COOKIE

TOKEN = "tok-" + "a1b2c3d4" * 4
OTHER_TOKEN = "tok-" + "e5f6a7b8" * 4
WRONG_TOKEN = "tok-" + "00000000" * 4
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

TOKEN_SETTINGS: dict[str, Any] = {
    "auth": "token",
    "tokens": f"{TOKEN},{OTHER_TOKEN}",
    "login_attempts_per_minute": 1000,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def origin_of(server: RunningServer) -> str:
    parts = urlsplit(server.url)
    return f"{parts.scheme}://{parts.netloc}"


async def sign_in(
    http: aiohttp.ClientSession,
    server: RunningServer,
    token: str = TOKEN,
    next_path: str | None = None,
) -> aiohttp.ClientResponse:
    form = {"token": token} | ({"next": next_path} if next_path is not None else {})
    async with http.post(
        server.path("login"),
        data=form,
        headers={"Origin": origin_of(server)},
        allow_redirects=False,
    ) as response:
        await response.read()
        return response


async def session_cookie(http: aiohttp.ClientSession, server: RunningServer) -> str:
    response = await sign_in(http, server)
    assert response.status == 303
    return response.cookies[SESSION_COOKIE].value


def cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


# Open without credentials: signing in and out, the probes, what the login page loads.
OPEN_ROUTES = {"login", "logout", "health", "ready", "static:dashboard.css"}


def is_page(path: str, base: str = "/zapjobs") -> bool:
    """What a browser navigates to (sent to sign in); the API and the stream answer 401."""
    return not (path.startswith(f"{base}/api/") or path == f"{base}/events")


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_every_route_refuses_missing_or_wrong_credentials(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    """A scan of the router: whatever a route is, no credentials means no data."""
    routes = route_requests(**TOKEN_SETTINGS)
    names = {route.name for route in routes}
    assert {"events", "api_runs", "page_overview", "page_run", "metrics"} <= names
    origin = origin_of(server)
    guarded = 0
    for route in routes:
        method, path, name = route.method, route.path, route.name
        methods = ["GET", "POST", "DELETE"] if method == "*" else [method]
        for verb in methods:
            if name in OPEN_ROUTES:
                continue
            guarded += 1
            for headers in ({}, bearer(WRONG_TOKEN), {"Authorization": f"Basic {TOKEN}"}):
                async with http.request(
                    verb, origin + path, headers=headers, allow_redirects=False
                ) as response:
                    body = await response.read()
                    assert response.status == 401, (verb, path, headers, response.status)
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                    assert response.content_type == "application/json"
                    assert verb == "HEAD" or b'"error"' in body
            if verb == "GET":
                async with http.get(origin + path, headers=HTML, allow_redirects=False) as response:
                    await response.read()
                    if is_page(path):
                        assert response.status == 303, path
                        location = urlsplit(response.headers["Location"])
                        assert location.path == "/zapjobs/login"
                        assert parse_qs(location.query).get("next", [path]) == [path]
                    else:
                        assert response.status == 401, path
    assert guarded >= 15


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_open_routes_answer_without_credentials(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for relative in (
        "health",
        "login",
        "static/dashboard.css",
        "static/theme.js",
        "static/favicon.svg",
    ):
        async with http.get(server.path(relative), allow_redirects=False) as response:
            assert response.status == 200, relative
    async with http.get(server.path("ready"), allow_redirects=False) as response:
        assert response.status in (200, 503)


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS | {"health_open": False}])
async def test_probes_are_guarded_when_not_opened(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for relative in ("health", "ready"):
        async with http.get(server.path(relative)) as response:
            assert response.status == 401
        async with http.get(server.path(relative), headers=bearer(TOKEN)) as response:
            assert response.status in (200, 503)


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_bearer_token_opens_api_pages_and_stream(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for relative in ("api/stats", "api/runs", "", "runs"):
        async with http.get(server.path(relative), headers=bearer(OTHER_TOKEN)) as response:
            assert response.status == 200, relative
    async with sse_connect(http, server.path("events"), headers=bearer(TOKEN)) as client:
        await client.wait_named("StatsUpdated")
    # A token in the query string is not a credential.
    for name in ("token", "access_token"):
        async with http.get(server.path(f"api/stats?{name}={TOKEN}")) as response:
            assert response.status == 401


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_pages_offer_sign_out_only_to_a_signed_in_session(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    cookie = await session_cookie(http, server)
    async with http.get(server.path("runs"), headers=cookie_header(cookie)) as response:
        assert 'action="/zapjobs/logout" method="post"' in await response.text()
    async with http.get(server.path("runs"), headers=bearer(TOKEN)) as response:
        assert "logout" not in await response.text()  # a script's token: nothing to end
    async with http.get(server.path("login")) as response:
        assert "logout" not in await response.text()


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_sign_in_sets_a_strict_httponly_session_and_goes_back(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        server.path("runs?status=Failed"), headers=HTML, allow_redirects=False
    ) as r:
        assert r.status == 303
        login = r.headers["Location"]
    next_path = parse_qs(urlsplit(login).query)["next"][0]
    assert next_path == "/zapjobs/runs?status=Failed"
    async with http.get(origin_of(server) + login) as page:
        html = await page.text()
        assert page.status == 200
        assert 'method="post"' in html and 'name="token"' in html
        assert page.headers["Cache-Control"] == "no-store"
    response = await sign_in(http, server, next_path=next_path)
    assert response.status == 303
    assert response.headers["Location"] == next_path
    raw = response.headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in raw.split(";")}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "samesite=strict" in raw.lower()
    assert "secure" not in attributes  # plain http on loopback, not told otherwise
    cookie = response.cookies[SESSION_COOKIE].value
    assert TOKEN not in cookie
    async with http.get(origin_of(server) + next_path, headers=cookie_header(cookie)) as page:
        assert page.status == 200
    async with sse_connect(http, server.path("events"), headers=cookie_header(cookie)) as client:
        await client.wait_named("StatsUpdated")
    # Signing out forgets the cookie.
    async with http.post(
        server.path("logout"),
        headers=cookie_header(cookie) | {"Origin": origin_of(server)},
        allow_redirects=False,
    ) as out:
        assert out.status == 303
        assert out.headers["Location"] == "/zapjobs/login"
        assert out.cookies[SESSION_COOKIE].value == ""


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS | {"cookie_secure": True}])
async def test_cookie_is_secure_when_told(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    response = await sign_in(http, server)
    assert "secure" in {p.strip().lower() for p in response.headers["Set-Cookie"].split(";")}


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_wrong_token_sign_in_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    response = await sign_in(http, server, token=WRONG_TOKEN)
    assert response.status == 401
    assert SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/",
        "https://evil.example/zapjobs/",
        "/\\evil.example/",
        "/zapjobs/../../evil",
        "/elsewhere",
        "javascript:alert(1)",
        "/zapjobs/\r\nSet-Cookie: x=1",
        "/zapjobs/login",
    ],
)
async def test_sign_in_never_redirects_off_the_dashboard(
    server: RunningServer, http: aiohttp.ClientSession, next_path: str
) -> None:
    response = await sign_in(http, server, next_path=next_path)
    assert response.status == 303
    assert response.headers["Location"] == "/zapjobs/"


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_cross_origin_sign_in_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {},
        {"Origin": origin_of(server), "Sec-Fetch-Site": "cross-site"},
    ):
        async with http.post(
            server.path("login"), data={"token": TOKEN}, headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            assert response.status == 403, headers
            assert SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS | {"session_secret": "s" * 32}])
async def test_tampered_cookie_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    cookie = await session_cookie(http, server)
    token_id, role, expires, signature = cookie.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    forgeries = [
        f"{token_id}.{role}.{expires}.{flipped}",
        f"{token_id}.{role}.{int(expires) + 86400}.{signature}",
        f"{'0' * len(token_id)}.{role}.{expires}.{signature}",
        f"{token_id}.operator.{expires}.{signature}",
        f"{token_id}.{role}.{expires}",
        "garbage",
        cookie + "x" * 600,
    ]
    for forged in forgeries:
        async with http.get(server.path("api/stats"), headers=cookie_header(forged)) as response:
            assert response.status == 401, forged
            assert "session" in (await response.json())["error"]
        async with http.get(
            server.path("runs"), headers=cookie_header(forged) | HTML, allow_redirects=False
        ) as page:
            assert page.status == 303
    async with http.get(server.path("api/stats"), headers=cookie_header(cookie)) as response:
        assert response.status == 200


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS | {"session_lifetime": 1.0}])
async def test_expired_cookie_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    cookie = await session_cookie(http, server)
    async with http.get(server.path("api/stats"), headers=cookie_header(cookie)) as response:
        assert response.status == 200
    await asyncio.sleep(2.1)  # expiry is rounded up to the next whole second
    async with http.get(server.path("api/stats"), headers=cookie_header(cookie)) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    "server_settings", [TOKEN_SETTINGS | {"session_lifetime": 2.0, "heartbeat": 0.5}]
)
async def test_stream_ends_within_a_heartbeat_of_session_expiry(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    response = await sign_in(http, server)
    cookie = response.cookies[SESSION_COOKIE].value
    expires_at = int(cookie.split(".")[2])
    async with sse_connect(http, server.path("events"), headers=cookie_header(cookie)) as client:
        await client.wait_named("StatsUpdated")
        ended = await client.wait_named("auth_expired", timeout=6.0)
        late = time.time() - expires_at
        assert late <= server.settings.heartbeat + 0.5, late
        assert ended[0].json() == {"reason": "session_expired", "login": "/zapjobs/login"}
        assert ended[0].id is None
        await _wait_closed(client)
    async with http.get(server.path("events"), headers=cookie_header(cookie)) as again:
        assert again.status == 401


async def _wait_closed(client: SSEClient, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.closed:
        assert time.monotonic() < deadline, "the stream stayed open"
        await asyncio.sleep(0.05)


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# dashboard tokens\n{TOKEN}\n\n{OTHER_TOKEN}\n", encoding="utf-8")
    return path


@pytest.fixture
def server_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A server reading its tokens from a file, for the tests that ask for `tokens_file`."""
    if "tokens_file" in request.fixturenames:
        path = request.getfixturevalue("tokens_file")
        return {"auth": "token", "tokens_file": str(path), "heartbeat": 0.5}
    return {}


async def test_removing_a_token_from_the_file_ends_its_streams_and_sessions(
    server: RunningServer, http: aiohttp.ClientSession, tokens_file: Path
) -> None:
    cookie = await session_cookie(http, server)  # signed in with TOKEN
    async with (
        sse_connect(http, server.path("events"), headers=bearer(TOKEN)) as by_bearer,
        sse_connect(http, server.path("events"), headers=cookie_header(cookie)) as by_cookie,
        sse_connect(http, server.path("events"), headers=bearer(OTHER_TOKEN)) as other,
    ):
        for client in (by_bearer, by_cookie, other):
            await client.wait_named("StatsUpdated")
        await asyncio.to_thread(tokens_file.write_text, f"{OTHER_TOKEN}\n", "utf-8")
        removed_at = time.monotonic()
        for client in (by_bearer, by_cookie):
            ended = await client.wait_named("auth_expired", timeout=5.0)
            assert ended[0].json()["reason"] == "token_revoked"
        assert time.monotonic() - removed_at <= server.settings.heartbeat + 1.5
        comments = other.comments
        await other.wait_for(lambda _: other.comments > comments, what="a heartbeat")
        assert not other.closed and not other.named("auth_expired")
    async with http.get(server.path("api/stats"), headers=bearer(TOKEN)) as response:
        assert response.status == 401
    async with http.get(server.path("api/stats"), headers=cookie_header(cookie)) as response:
        assert response.status == 401
    # A token added to the file works at once.
    await asyncio.to_thread(tokens_file.write_text, f"{OTHER_TOKEN}\n{WRONG_TOKEN}\n", "utf-8")

    async def new_token_works() -> bool:
        async with http.get(server.path("api/stats"), headers=bearer(WRONG_TOKEN)) as response:
            return response.status == 200

    for _ in range(50):  # the file is re-read when it changes: well within 5 s
        if await new_token_works():
            break
        await asyncio.sleep(0.1)
    assert await new_token_works()


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS | {"login_attempts_per_minute": 3}])
async def test_failed_sign_ins_are_rate_limited_per_address(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        assert (await sign_in(http, server, token=WRONG_TOKEN)).status == 401
    throttled = await sign_in(http, server, token=TOKEN)  # even the right one, for a while
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    async with http.get(server.path("api/stats"), headers=bearer(TOKEN)) as response:
        assert response.status == 429  # guessing through the API is throttled as well


@pytest.mark.parametrize("server_settings", [TOKEN_SETTINGS])
async def test_credentials_never_reach_the_logs(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    with structlog.testing.capture_logs() as records:
        cookie = await session_cookie(http, server)
        await sign_in(http, server, token=WRONG_TOKEN)
        async with http.get(server.path("api/stats"), headers=bearer(WRONG_TOKEN)) as response:
            assert response.status == 401
        async with sse_connect(http, server.path("events"), headers=bearer(TOKEN)) as client:
            await client.wait_named("StatsUpdated")
    text = repr(records)
    assert "signed_in" in text and "sign_in_failed" in text
    for secret in (TOKEN, WRONG_TOKEN, cookie, cookie.split(".")[2]):
        assert secret not in text


PROXY_SETTINGS: dict[str, Any] = {"auth": "proxy", "trusted_proxies": "127.0.0.0/8, ::1"}


@pytest.mark.parametrize("server_settings", [PROXY_SETTINGS])
async def test_proxy_header_is_believed_from_a_trusted_proxy(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    user = {"X-Forwarded-User": "alice"}
    async with http.get(server.path("api/stats"), headers=user) as response:
        assert response.status == 200
    async with sse_connect(http, server.path("events"), headers=user) as client:
        await client.wait_named("StatsUpdated")
    for route in route_requests(**PROXY_SETTINGS):
        if route.name in OPEN_ROUTES or route.method not in ("GET", "POST"):
            continue
        async with http.request(
            route.method, origin_of(server) + route.path, headers=HTML, allow_redirects=False
        ) as refused:
            assert refused.status == 401, route.path
            assert refused.headers["WWW-Authenticate"]


@pytest.mark.parametrize("server_settings", [{"auth": "proxy", "trusted_proxies": "10.0.0.0/8"}])
async def test_proxy_header_from_elsewhere_is_ignored(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        server.path("api/stats"), headers={"X-Forwarded-User": "mallory"}
    ) as response:
        assert response.status == 401


def test_settings_refuse_an_open_server_on_a_public_address(database_dsn: str) -> None:
    from zapjobs_sse.settings import SettingsError

    with pytest.raises(SettingsError, match="--auth token"):
        create_app(make_settings(database_dsn, host="0.0.0.0"))
    with structlog.testing.capture_logs() as records:
        app = create_app(make_settings(database_dsn, host="0.0.0.0", insecure_no_auth=True))
    assert isinstance(app, web.Application)
    warning = next(r for r in records if r["event"] == "authentication_disabled")
    assert warning["log_level"] == "warning" and warning["host"] == "0.0.0.0"
