"""Times as the tables hold them (naive UTC) and as the pages show them.

The wire form (ISO-8601 with a trailing Z) is live.wire.timestamp.
"""

from __future__ import annotations

from datetime import datetime

from ..live.wire import utc_now

__all__ = ["format_time", "utc_now"]


def format_time(value: str | datetime | None) -> str:
    """`YYYY-MM-DD HH:MM:SS` (UTC) from a wire timestamp or a naive UTC datetime."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value[:10] + " " + value[11:19]
