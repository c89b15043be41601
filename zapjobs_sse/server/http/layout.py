"""What the layout of every page (web/templates/base.html) needs, added in one place."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ..keys import CAN_SIGN_OUT, SETTINGS
from .times import format_time, utc_now

__all__ = ["render_page"]


def render_page(
    template: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render a template with the layout's context: base path, poll interval, render time
    and whether to offer "Sign out" (`page` defaults to "error")."""
    settings = request.app[SETTINGS]
    context["base"] = settings.normalized_base_path
    context["poll_interval_ms"] = int(settings.poll_interval * 1000)
    context.setdefault("page", "error")
    context["rendered_at"] = format_time(utc_now())
    context["can_sign_out"] = request.get(CAN_SIGN_OUT, False)
    response: web.Response = aiohttp_jinja2.render_template(
        template, request, context, status=status
    )
    return response
