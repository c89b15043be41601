"""The notice a form action leaves for the page it goes back to (a short-lived, signed
cookie, read once by the next page; no JavaScript needed)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, Final

from aiohttp import web

from .auth.authenticator import AUTHENTICATOR

__all__ = ["NOTICE_COOKIE", "forget_notice", "leave_notice", "read_notice"]

NOTICE_COOKIE: Final = "zapjobs_notice"
NOTICE_SECONDS: Final = 60
MAX_MESSAGE: Final = 500


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def leave_notice(
    request: web.Request, response: web.StreamResponse, kind: str, message: str
) -> None:
    """Leave `{kind, message}` (kind: done or conflict) for the next page this browser loads."""
    authenticator = request.app[AUTHENTICATOR]
    text = json.dumps({"kind": kind, "message": message[:MAX_MESSAGE]}, ensure_ascii=True)
    payload = base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
    response.set_cookie(
        NOTICE_COOKIE,
        f"{payload}.{_sign(authenticator.notice_key, payload)}",
        max_age=NOTICE_SECONDS,
        path=authenticator.cookie_path,
        httponly=True,
        samesite="Strict",
        secure=authenticator.cookie_secure or request.secure,
    )


def read_notice(request: web.Request) -> dict[str, Any] | None:
    """The notice left for this page, if any and well signed."""
    value = request.cookies.get(NOTICE_COOKIE)
    if value is None:
        return None
    authenticator = request.app[AUTHENTICATOR]
    payload, _, signature = value.partition(".")
    expected = _sign(authenticator.notice_key, payload)
    if len(value) > 2048 or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        notice = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(notice, dict) or not {"kind", "message"} <= set(notice):
        return None
    return {"kind": str(notice["kind"]), "message": str(notice["message"])}


def forget_notice(request: web.Request, response: web.StreamResponse) -> None:
    """Remove the notice once a page has shown it (it is read once)."""
    if NOTICE_COOKIE in request.cookies:
        response.del_cookie(NOTICE_COOKIE, path=request.app[AUTHENTICATOR].cookie_path)
