"""Typed keys of the long-lived resources kept on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from ..db import Database
from ..settings import Settings
from .live.bridge import Bridge
from .live.broker import Broker
from .live.logs import LogFollowing
from .live.rollups import RunHours
from .live.stats import StatsCoalescer

__all__ = [
    "BRIDGE",
    "BROKER",
    "CAN_SIGN_OUT",
    "DATABASE",
    "HOURS",
    "LOGS",
    "PUBLIC_PATHS",
    "SETTINGS",
    "STATS",
]

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BROKER = web.AppKey("broker", Broker)
BRIDGE = web.AppKey("bridge", Bridge)
LOGS = web.AppKey("logs", LogFollowing)
STATS = web.AppKey("stats", StatsCoalescer)
HOURS = web.AppKey("hours", RunHours)
# Set on requests that a session cookie signed in: the pages then offer "Sign out".
CAN_SIGN_OUT = web.RequestKey("can_sign_out", bool)
# Paths served without authentication (probes; /metrics when --metrics-open).
PUBLIC_PATHS = web.AppKey("public_paths", frozenset[str])
