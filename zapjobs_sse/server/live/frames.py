"""The SSE encoder: events become bytes once, and every subscriber gets the same bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LazyJson", "comment_frame", "dumps", "event_frame", "with_retry"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FIELD_UNSAFE = re.compile(r"[\r\n\0]")


def dumps(value: Any) -> str:
    """Compact JSON that keeps non-ASCII text as it is, but for U+2028 and U+2029: valid
    in JSON, they are line breaks to clients that split lines like str.splitlines()."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


class LazyJson:
    """The JSON (`dumps`) of `shape(row)`, made on the first call and kept: the data of an
    event that no stream may take (Broker.publish), shared by the events of one row."""

    __slots__ = ("_row", "_shape", "_text")

    def __init__(self, shape: Callable[[Mapping[str, Any]], Any], row: Mapping[str, Any]) -> None:
        self._shape = shape
        self._row: Mapping[str, Any] | None = row
        self._text: str | None = None

    def __call__(self) -> str:
        if self._text is None:
            assert self._row is not None
            self._text = dumps(self._shape(self._row))
            self._row = None
        return self._text


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


def with_retry(milliseconds: int, frames: bytes) -> bytes:
    """The frames, with a reconnection delay hint in the block of the first one."""
    return b"retry: %d\n%b" % (int(milliseconds), frames)


def comment_frame(text: str = "") -> bytes:
    """A comment line: ignored by clients, keeps proxies from timing the stream out."""
    return f": {_LINE_BREAK.sub(' ', text)}\n\n".encode()
