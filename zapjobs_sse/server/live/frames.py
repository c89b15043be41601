"""The SSE encoder: events become bytes once, and every subscriber gets the same bytes."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["comment_frame", "dumps", "event_frame", "retry_frame"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FIELD_UNSAFE = re.compile(r"[\r\n\0]")


def dumps(value: Any) -> str:
    """Compact JSON that keeps non-ASCII text as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_frame(event_id: str | None, name: str, data: str) -> bytes:
    """One `id:` / `event:` / `data:` frame (no `id:` line for an event that is not to be
    resumed from); ids and names lose any CR, LF or NUL."""
    name = _FIELD_UNSAFE.sub("", name)
    if "\n" in data or "\r" in data:
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    else:
        body = f"data: {data}\n"
    if event_id is None:
        return f"event: {name}\n{body}\n".encode()
    return f"id: {_FIELD_UNSAFE.sub('', event_id)}\nevent: {name}\n{body}\n".encode()


def retry_frame(milliseconds: int) -> bytes:
    return f"retry: {int(milliseconds)}\n\n".encode()


def comment_frame(text: str = "") -> bytes:
    """A comment line: ignored by clients, keeps proxies from timing the stream out."""
    return f": {_LINE_BREAK.sub(' ', text)}\n\n".encode()
