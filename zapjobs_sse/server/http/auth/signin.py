"""{base}/login and {base}/logout: the sign-in form, the session cookie, signing out."""

from __future__ import annotations

import structlog
from aiohttp import web

from ....settings import is_loopback_host
from ...keys import SETTINGS
from ..errors import json_error
from ..layout import render_page
from ..params import form_fields
from .authenticator import (
    AUTHENTICATOR,
    Authenticator,
    Principal,
    names_other_site,
    safe_next,
    see_other,
)
from .sessions import SESSION_COOKIE
from .tokens import token_identity

__all__ = ["login_page", "login_submit", "logout", "setup_auth"]

log = structlog.get_logger("zapjobs_sse.server.http.auth.signin")


def _render_login(
    request: web.Request, *, status: int = 200, error: str | None = None, next_path: str
) -> web.Response:
    context = {
        "title": "Sign in",
        "page": "login",
        "login_path": request.app[AUTHENTICATOR].login_path,
        "next_path": next_path,
        "error": error,
    }
    response = render_page("login.html", request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _same_origin(request: web.Request) -> bool:
    """CSRF check of a form POST: the browser says it comes from this very origin."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return bool(source) and not names_other_site(request)


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET {base}/login: the sign-in form (or straight back when already signed in)."""
    authenticator = request.app[AUTHENTICATOR]
    next_path = safe_next(request.query.get("next"), authenticator.base)
    if authenticator.mode != "token" or isinstance(authenticator.identify(request), Principal):
        return see_other(next_path)
    return _render_login(request, next_path=next_path)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST {base}/login: check the token, set the session cookie, go back where one was."""
    authenticator = request.app[AUTHENTICATOR]
    if authenticator.mode != "token":
        return see_other(f"{authenticator.base}/")
    if not _same_origin(request):
        log.warning("sign_in_cross_origin_refused", remote=request.remote)
        return json_error(403, "cross-origin sign-in refused")
    form = await form_fields(request)
    next_value = form.get("next")
    next_path = safe_next(next_value if isinstance(next_value, str) else None, authenticator.base)
    address = request.remote or ""
    retry_after = authenticator.throttle.retry_after(address)
    if retry_after is not None:
        response = _render_login(
            request,
            status=429,
            error="Too many failed sign-ins. Wait a minute and try again.",
            next_path=next_path,
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    token = form.get("token")
    token_id = authenticator.tokens.match(token.strip()) if isinstance(token, str) else None
    if token_id is None:
        authenticator.throttle.failed(address)
        log.info("sign_in_failed", remote=address)
        return _render_login(
            request, status=401, error="That token is not valid.", next_path=next_path
        )
    role = authenticator.tokens.role(token_id)
    log.info("signed_in", identity=token_identity(token_id), role=role, remote=address)
    response = see_other(next_path)
    authenticator.set_session(request, response, token_id)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """{base}/logout: forget the session cookie, back to the sign-in page."""
    authenticator = request.app[AUTHENTICATOR]
    if request.method == "POST" and not _same_origin(request):
        return json_error(403, "cross-origin sign-out refused")
    target = authenticator.login_path if authenticator.mode == "token" else f"{authenticator.base}/"
    response = see_other(target)
    response.del_cookie(SESSION_COOKIE, path=authenticator.cookie_path)
    return response


def setup_auth(app: web.Application) -> None:
    """Create the authenticator and the sign-in routes (the middleware is
    authenticator.authenticate)."""
    settings = app[SETTINGS]
    app[AUTHENTICATOR] = Authenticator(settings)
    if settings.auth == "none" and not is_loopback_host(settings.host):
        log.warning(
            "authentication_disabled",
            host=settings.host,
            hint="anyone who can reach this address sees every job; use --auth token or proxy",
        )
    base = settings.normalized_base_path
    app.router.add_get(f"{base}/login", login_page, name="login")
    app.router.add_post(f"{base}/login", login_submit, name="login")
    app.router.add_get(f"{base}/logout", logout, name="logout")
    app.router.add_post(f"{base}/logout", logout, name="logout")
    if settings.tokens and settings.auth != "token":
        log.warning("tokens_ignored", hint="ZAPJOBS_TOKENS is set but --auth is not token")
