"""The notice a form action leaves for the next page: signed, and only what was left."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from zapjobs_sse.server.http.auth.authenticator import AUTHENTICATOR, Authenticator
from zapjobs_sse.server.http.notice import NOTICE_COOKIE, leave_notice, read_notice
from zapjobs_sse.settings import Settings


def _app(secret: str) -> web.Application:
    app = web.Application()
    app[AUTHENTICATOR] = Authenticator(Settings(session_secret=secret))
    return app


async def test_a_notice_left_by_an_action_is_read_back_only_when_well_signed() -> None:
    app = _app("s" * 32)
    posted = make_mocked_request("POST", "/zapjobs/runs/x/cancel", app=app)
    response = web.Response()
    leave_notice(posted, response, "conflict", "id: run x is Completed <b>")
    value = response.cookies[NOTICE_COOKIE].value

    def page(cookie: str, on: web.Application = app) -> web.Request:
        return make_mocked_request(
            "GET", "/zapjobs/runs", headers={"Cookie": f"{NOTICE_COOKIE}={cookie}"}, app=on
        )

    assert read_notice(page(value)) == {
        "kind": "conflict",
        "message": "id: run x is Completed <b>",
    }
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
    assert read_notice(page(tampered)) is None
    assert read_notice(page(value, _app("t" * 32))) is None
    assert read_notice(page("garbage")) is None
