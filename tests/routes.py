"""Every route of the app as concrete requests, for tests that scan the router."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.conftest import make_settings
from zapjobs_sse.server.app import create_app

__all__ = ["RouteRequest", "route_requests"]


@dataclass(frozen=True, slots=True)
class RouteRequest:
    method: str  # "*" for a route that takes any method
    path: str  # path parameters filled with valid values
    name: str  # the route's name; "static:<file>" for a static file
    formatter: str | None = None  # the path with `{id}` left in, for dynamic routes


def route_requests(**settings_overrides: Any) -> list[RouteRequest]:
    """One request per registered route (static routes: a file the login page needs, and
    one it does not), built from the app that create_app makes for these settings."""
    app = create_app(make_settings("postgresql://unused", **settings_overrides))
    requests = []
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        info = resource.get_info()
        name = resource.name or ""
        if "path" in info:
            requests.append(RouteRequest(route.method, str(info["path"]), name))
        elif "formatter" in info:
            formatter = str(info["formatter"])
            path = formatter.format(id=str(uuid.uuid4()))
            requests.append(RouteRequest(route.method, path, name, formatter))
        else:
            prefix = str(info["prefix"])
            for file in ("dashboard.css", "openapi.json"):
                requests.append(RouteRequest(route.method, f"{prefix}/{file}", f"static:{file}"))
    return requests
