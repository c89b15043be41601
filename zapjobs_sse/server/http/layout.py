"""What the layout of every page (web/templates/base.html) needs, added in one place."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ..keys import CAN_SIGN_OUT, SETTINGS
from ..live.wire import timestamp
from .auth.authenticator import AUTHENTICATOR, PRINCIPAL
from .notice import forget_notice, read_notice
from .times import format_time, utc_now

__all__ = ["render_page"]


def render_page(
    template: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render a template with the layout's context: base path, poll interval, render time,
    whether to offer "Sign out" (`page` defaults to "error"), `live_from`; for the action forms:
    `can_act` (an operator, not --read-only), `csrf_token`, a fresh `form_key` (their
    idempotency_key), `here` (their `next`: this page) and the `notice` the last action
    left, if any."""
    settings = request.app[SETTINGS]
    principal = request.get(PRINCIPAL)
    context["base"] = settings.normalized_base_path
    context["poll_interval_ms"] = int(settings.poll_interval * 1000)
    context.setdefault("page", "error")
    context.setdefault("live_from", "")  # pages.py: where the page's stream starts
    now = utc_now()
    context["rendered_at"] = format_time(now)
    # To the millisecond: times.js takes the browser's offset from the server's clock
    # from it, and the ages it keeps ticking count seconds.
    context["rendered_at_iso"] = timestamp(now)
    context["can_sign_out"] = request.get(CAN_SIGN_OUT, False)
    context["can_act"] = principal is not None and principal.is_operator and not settings.read_only
    context["csrf_token"] = request.app[AUTHENTICATOR].csrf_token(request)
    context["form_key"] = uuid.uuid4().hex
    context["here"] = request.raw_path  # as sent: the path and its query
    context["notice"] = read_notice(request)
    response: web.Response = aiohttp_jinja2.render_template(
        template, request, context, status=status
    )
    forget_notice(request, response)
    return response
