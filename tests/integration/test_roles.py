"""Who may act: operator and viewer tokens, sessions that carry their role, the CSRF token
and Origin check of browser posts, proxy groups, --read-only."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer, make_settings
from tests.integration.test_auth import cookie_header, origin_of, sign_in
from tests.support import Writer
from zapjobs_sse.server.http.auth.sessions import SESSION_COOKIE
from zapjobs_sse.server.http.auth.tokens import TokenStore
from zapjobs_sse.server.run import serve_app
from zapjobs_sse.settings import SettingsError

OPERATOR_TOKEN = "op-" + "1a2b3c4d" * 4
VIEWER_TOKEN = "vw-" + "5e6f7a8b" * 4
BARE_TOKEN = "bare-" + "9c0d1e2f" * 4
SECRET = "s" * 32

ROLE_SETTINGS: dict[str, Any] = {
    "auth": "token",
    "tokens": f"operator {OPERATOR_TOKEN}, viewer {VIEWER_TOKEN}, {BARE_TOKEN}",
    "session_secret": SECRET,
    "login_attempts_per_minute": 1000,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_token(cookie: str, secret: str = SECRET) -> str:
    """What the pages' forms carry: an HMAC of the session cookie (auth/authenticator.py)."""
    key = hmac.new(secret.encode(), b"zapjobs-sse csrf", hashlib.sha256).digest()
    digest = hmac.new(key, cookie.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def pending_run(writer: Writer) -> str:
    return await writer.insert_run("email", status=0)


async def status_of(writer: Writer, run_id: str) -> int:
    ((status,),) = await writer.execute("SELECT status FROM zapjobs.runs WHERE id = %s", (run_id,))
    return int(status)


async def trail(writer: Writer) -> list[tuple[Any, ...]]:
    return await writer.execute(
        "SELECT identity, action, outcome, http_status, message FROM zapjobs.sse_activity"
        " ORDER BY at"
    )


@pytest.mark.parametrize("server_settings", [ROLE_SETTINGS])
async def test_operators_act_viewers_get_403_and_no_credentials_401(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await pending_run(writer)
    url = server.path(f"api/runs/{run_id}/cancel")
    for token in (VIEWER_TOKEN, BARE_TOKEN):
        async with http.post(url, headers=bearer(token)) as response:
            assert response.status == 403
            assert "viewer" in (await response.json())["error"]
    async with http.post(url, data=b"{not json", headers=bearer(VIEWER_TOKEN)) as response:
        assert response.status == 403  # who may act comes before what the body says
    async with http.post(url) as response:
        assert response.status == 401
    async with http.post(url, headers=bearer("x" * 40)) as response:
        assert response.status == 401
    assert await status_of(writer, run_id) == 0  # nothing written
    refused = await trail(writer)
    assert [row[2:4] for row in refused] == [("forbidden", 403)] * 3
    assert all(row[0].startswith("token:") for row in refused)
    async with http.post(url, headers=bearer(OPERATOR_TOKEN)) as response:
        assert response.status == 200
    assert await status_of(writer, run_id) == 5
    # The viewer still reads everything.
    async with http.get(server.path("api/activity"), headers=bearer(VIEWER_TOKEN)) as response:
        assert len((await response.json())["activity"]) == 4


@pytest.mark.parametrize("server_settings", [ROLE_SETTINGS])
async def test_a_session_post_needs_its_csrf_token_and_a_same_site_origin(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    signed_in = await sign_in(http, server, OPERATOR_TOKEN)
    cookie = signed_in.cookies[SESSION_COOKIE].value
    assert cookie.split(".")[1] == "operator"
    http.cookie_jar.clear()
    run_id = await pending_run(writer)
    form_url = server.path(f"runs/{run_id}/cancel")
    same_site = {"Origin": origin_of(server)}
    refused = [
        ({}, same_site),
        ({"csrf_token": "x" * 43}, same_site),
        ({"csrf_token": csrf_token(cookie, "t" * 32)}, same_site),
        ({"csrf_token": csrf_token(cookie)}, {"Origin": "https://evil.example"}),
        ({"csrf_token": csrf_token(cookie)}, {"Origin": "null"}),
        ({"csrf_token": csrf_token(cookie)}, {"Referer": "https://evil.example/page"}),
        ({"csrf_token": csrf_token(cookie)}, same_site | {"Sec-Fetch-Site": "cross-site"}),
    ]
    for form, headers in refused:
        async with http.post(
            form_url, data=form, headers=cookie_header(cookie) | headers, allow_redirects=False
        ) as response:
            assert response.status == 403, (form, headers)
    assert await status_of(writer, run_id) == 0
    async with http.post(
        form_url,
        data={"csrf_token": csrf_token(cookie), "next": "/zapjobs/runs"},
        headers=cookie_header(cookie) | same_site,
        allow_redirects=False,
    ) as response:
        assert response.status == 303 and response.headers["Location"] == "/zapjobs/runs"
    assert await status_of(writer, run_id) == 5
    # The API takes the token as a header (the pages' script); a bearer call needs none.
    other = await pending_run(writer)
    async with http.post(
        server.path(f"api/runs/{other}/cancel"),
        headers=cookie_header(cookie) | same_site | {"X-CSRF-Token": csrf_token(cookie)},
    ) as response:
        assert response.status == 200
    async with http.post(
        server.path(f"api/runs/{await pending_run(writer)}/cancel"),
        headers=bearer(OPERATOR_TOKEN) | {"Origin": "https://evil.example"},
    ) as response:
        assert response.status == 200


@pytest.mark.parametrize("server_settings", [ROLE_SETTINGS])
async def test_a_viewer_session_cannot_forge_the_operator_role(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    signed_in = await sign_in(http, server, VIEWER_TOKEN)
    cookie = signed_in.cookies[SESSION_COOKIE].value
    http.cookie_jar.clear()
    token_id, role, expires, signature = cookie.split(".")
    assert role == "viewer"
    forged = f"{token_id}.operator.{expires}.{signature}"
    run_id = await pending_run(writer)
    for value in (cookie, forged):
        async with http.post(
            server.path(f"api/runs/{run_id}/cancel"),
            headers=cookie_header(value)
            | {"Origin": origin_of(server), "X-CSRF-Token": csrf_token(value)},
        ) as response:
            assert response.status == (403 if value == cookie else 401)
    assert await status_of(writer, run_id) == 0


async def test_the_tokens_file_gives_roles_and_lowering_one_ends_its_power(
    database_dsn: str, tmp_path: Path, http: aiohttp.ClientSession, writer: Writer
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# roles\noperator {OPERATOR_TOKEN}\nviewer {VIEWER_TOKEN}\n{BARE_TOKEN}\n")
    settings = make_settings(
        database_dsn, auth="token", tokens_file=str(tokens), session_secret=SECRET
    )
    async with serve_app(settings) as url:
        server = RunningServer(url, settings)
        cookie = (await sign_in(http, server, OPERATOR_TOKEN)).cookies[SESSION_COOKIE].value
        http.cookie_jar.clear()
        headers = cookie_header(cookie) | {
            "Origin": origin_of(server),
            "X-CSRF-Token": csrf_token(cookie),
        }
        first, second = await pending_run(writer), await pending_run(writer)
        async with http.post(server.path(f"api/runs/{first}/cancel"), headers=headers) as answer:
            assert answer.status == 200
        tokens.write_text(f"viewer {OPERATOR_TOKEN}\n")
        await asyncio.sleep(0.6)  # the file is looked at twice a second
        async with http.post(server.path(f"api/runs/{second}/cancel"), headers=headers) as answer:
            assert answer.status == 403
        async with http.get(server.path("api/stats"), headers=headers) as answer:
            assert answer.status == 200  # still a viewer
    assert await status_of(writer, second) == 0


def test_tokens_name_their_role_or_are_viewers(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"operator {OPERATOR_TOKEN}\nVIEWER {VIEWER_TOKEN}\n{BARE_TOKEN}\n")
    store = TokenStore([f"operator {BARE_TOKEN}"], str(path), b"k" * 32)
    both = (OPERATOR_TOKEN, VIEWER_TOKEN)
    roles = {token: store.role(store.match(token) or "") for token in both}
    assert roles == {OPERATOR_TOKEN: "operator", VIEWER_TOKEN: "viewer"}
    # Listed as an operator in one place and a viewer in the other: a viewer.
    assert store.role(store.match(BARE_TOKEN) or "") == "viewer"
    path.write_text(f"admin {OPERATOR_TOKEN}\n")
    with pytest.raises(SettingsError, match="operator <token>"):
        TokenStore([], str(path), b"k" * 32)
    with pytest.raises(SettingsError, match="ZAPJOBS_TOKENS"):
        TokenStore([f"root {OPERATOR_TOKEN}"], None, b"k" * 32)


@pytest.mark.parametrize(
    "server_settings",
    [
        {
            "auth": "proxy",
            "trusted_proxies": "127.0.0.1/32",
            "operator_groups": "ops, admins",
        }
    ],
)
async def test_proxy_groups_make_operators(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    cases = [
        ({"X-Forwarded-User": "ada", "X-Forwarded-Groups": "dev, admins"}, 200),
        ({"X-Forwarded-User": "bob", "X-Forwarded-Groups": "dev,opsx"}, 403),
        ({"X-Forwarded-User": "eve"}, 403),
    ]
    for headers, status in cases:
        run_id = await pending_run(writer)
        async with http.post(server.path(f"api/runs/{run_id}/cancel"), headers=headers) as answer:
            assert answer.status == status, headers
    # A browser post from another site is refused even without a session cookie.
    run_id = await pending_run(writer)
    async with http.post(
        server.path(f"api/runs/{run_id}/cancel"),
        headers=cases[0][0] | {"Origin": "https://evil.example"},
    ) as answer:
        assert answer.status == 403
    identities = [row[0] for row in await trail(writer)]
    assert identities == ["user:ada", "user:bob", "user:eve", "user:ada"]


@pytest.mark.parametrize("server_settings", [{"read_only": True}])
async def test_read_only_refuses_every_action(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await pending_run(writer)
    for path in (f"api/runs/{run_id}/cancel", "api/jobs/email/trigger", "api/dead-letter/discard"):
        async with http.post(server.path(path)) as answer:
            assert answer.status == 403
            assert "read-only" in (await answer.json())["error"]
    async with http.post(server.path(f"api/runs/{uuid.uuid4()}/retry")) as answer:
        assert answer.status == 403
    assert await status_of(writer, run_id) == 0
    assert {row[2] for row in await trail(writer)} == {"forbidden"}


async def test_the_local_user_of_an_unauthenticated_server_is_an_operator(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await pending_run(writer)
    async with http.post(
        server.path(f"api/runs/{run_id}/cancel"), headers={"Origin": "http://evil.example"}
    ) as answer:
        assert answer.status == 403  # a page of another site posting to the local server
    async with http.post(server.path(f"api/runs/{run_id}/cancel")) as answer:
        assert answer.status == 200
