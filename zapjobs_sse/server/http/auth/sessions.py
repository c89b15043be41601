"""The session cookie a browser gets by signing in (SESSION_COOKIE), and its codec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Final, NamedTuple

from ....settings import ROLES

__all__ = ["SESSION_COOKIE", "Session", "SessionCodec"]

SESSION_COOKIE: Final = "zapjobs_session"
MAX_COOKIE_LENGTH: Final = 512


class Session(NamedTuple):
    """What a well-signed session cookie says: whose token, which role, until when."""

    token_id: str
    role: str
    expires: int


class SessionCodec:
    """Session cookies: `<token id>.<role>.<expiry>.<HMAC-SHA256 signature>`, nothing secret
    inside; the signature covers the role, so a viewer cannot make itself an operator."""

    def __init__(
        self, key: bytes, lifetime: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self.lifetime = lifetime
        self._clock = clock

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, token_id: str, role: str) -> tuple[str, int]:
        """A cookie value for this token and role, and the UNIX time at which it expires."""
        expires = math.ceil(self._clock() + self.lifetime)
        payload = f"{token_id}.{role}.{expires}"
        return f"{payload}.{self._sign(payload)}", expires

    def read(self, value: str) -> Session | None:
        """What a well-signed, unexpired cookie says; None otherwise."""
        if len(value) > MAX_COOKIE_LENGTH:
            return None
        parts = value.split(".")
        if len(parts) != 4:
            return None
        token_id, role, expires_text, signature = parts
        if not token_id or role not in ROLES or not expires_text.isdigit():
            return None
        if not signature.isascii():
            return None
        expected = self._sign(f"{token_id}.{role}.{expires_text}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        expires = int(expires_text)
        if expires <= self._clock():
            return None
        return Session(token_id, role, expires)
