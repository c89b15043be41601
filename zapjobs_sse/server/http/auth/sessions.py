"""The session cookie a browser gets by signing in (SESSION_COOKIE), and its codec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Final

__all__ = ["SESSION_COOKIE", "SessionCodec"]

SESSION_COOKIE: Final = "zapjobs_session"
MAX_COOKIE_LENGTH: Final = 512


class SessionCodec:
    """Session cookies: `<token id>.<expiry>.<HMAC-SHA256 signature>`, nothing secret inside."""

    def __init__(
        self, key: bytes, lifetime: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self.lifetime = lifetime
        self._clock = clock

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, token_id: str) -> tuple[str, int]:
        """A cookie value for this token and the UNIX time at which it expires."""
        expires = math.ceil(self._clock() + self.lifetime)
        payload = f"{token_id}.{expires}"
        return f"{payload}.{self._sign(payload)}", expires

    def read(self, value: str) -> tuple[str, int] | None:
        """(token id, expiry) of a well-signed, unexpired cookie; None otherwise."""
        if len(value) > MAX_COOKIE_LENGTH:
            return None
        token_id, _, rest = value.partition(".")
        expires_text, _, signature = rest.partition(".")
        if not token_id or not expires_text.isdigit() or not signature.isascii():
            return None
        expected = self._sign(f"{token_id}.{expires_text}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        expires = int(expires_text)
        if expires <= self._clock():
            return None
        return token_id, expires
