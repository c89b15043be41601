"""Concurrent stream limits: in total and per identity (user, token, or address)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from .errors import json_error

__all__ = ["STREAM_LIMITER", "STREAM_RETRY_AFTER", "StreamLimiter", "StreamSlot"]

# Seconds a refused client is asked to wait; EventSource gives up on a 429 and the
# browser client falls back to polling, so this paces the scripts.
STREAM_RETRY_AFTER: Final = 10


class StreamSlot:
    """One admitted stream; release it exactly once when the stream ends."""

    __slots__ = ("_identity", "_limiter")

    def __init__(self, limiter: StreamLimiter, identity: str) -> None:
        self._limiter: StreamLimiter | None = limiter
        self._identity = identity

    def release(self) -> None:
        if self._limiter is not None:
            self._limiter._release(self._identity)
            self._limiter = None


class StreamLimiter:
    """Counts open streams; refuses the one over a limit with 429 and Retry-After."""

    def __init__(self, max_total: int, max_per_identity: int) -> None:
        self.max_total = max_total
        self.max_per_identity = max_per_identity
        self.total = 0
        self._per_identity: dict[str, int] = {}

    def acquire(self, identity: str) -> StreamSlot:
        """A slot for one more stream of `identity`; raises 429 when a limit is reached."""
        if self.total >= self.max_total:
            raise _too_many("the server has as many streams open as it allows")
        if self._per_identity.get(identity, 0) >= self.max_per_identity:
            raise _too_many(f"at most {self.max_per_identity} streams per user may be open")
        self.total += 1
        self._per_identity[identity] = self._per_identity.get(identity, 0) + 1
        return StreamSlot(self, identity)

    def _release(self, identity: str) -> None:
        self.total -= 1
        left = self._per_identity.get(identity, 1) - 1
        if left > 0:
            self._per_identity[identity] = left
        else:
            self._per_identity.pop(identity, None)


def _too_many(message: str) -> web.HTTPTooManyRequests:
    body = json_error(429, message)
    return web.HTTPTooManyRequests(
        text=body.text,
        content_type="application/json",
        headers={"Retry-After": str(STREAM_RETRY_AFTER)},
    )


STREAM_LIMITER = web.AppKey("stream_limiter", StreamLimiter)
