"""LogCursor: the position of a log line in its run's canonical order (timestamp, id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

__all__ = ["CursorError", "LogCursor"]

_EPOCH = datetime(1970, 1, 1)


class CursorError(ValueError):
    """A cursor string that is not one this server wrote."""


@dataclass(frozen=True, slots=True, order=True)
class LogCursor:
    """Lines of a run are ordered by (timestamp, id); a cursor is one such key.

    On the wire it is `<microseconds since 1970>.<uuid>`: opaque to clients,
    exact (PostgreSQL timestamps have microsecond resolution) and sortable here.
    """

    timestamp: datetime
    log_id: str

    START: ClassVar[LogCursor]

    def __str__(self) -> str:
        micros = (self.timestamp - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.log_id}"

    @classmethod
    def parse(cls, text: str) -> LogCursor:
        micros, dot, log_id = text.partition(".")
        if not dot or len(text) > 80:
            raise CursorError("expected <microseconds>.<uuid>")
        try:
            stamp = _EPOCH + timedelta(microseconds=int(micros))
            parsed = uuid.UUID(log_id)
        except (ValueError, OverflowError):
            raise CursorError("expected <microseconds>.<uuid>") from None
        return cls(stamp, str(parsed))


LogCursor.START = LogCursor(datetime(1, 1, 1), "00000000-0000-0000-0000-000000000000")
