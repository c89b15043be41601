"""Whether a long-lived stream may go on: its credentials are checked again as it runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from aiohttp import web

from ...live.frames import dumps, event_frame
from .authenticator import AUTHENTICATOR, PRINCIPAL, Principal
from .tokens import TokenStore

__all__ = [
    "ACCESS_ENDED",
    "SESSION_EXPIRED",
    "TOKEN_REVOKED",
    "access_ended_frame",
    "access_watch",
]

# Why a stream ended because its credentials stopped holding (Subscription.close_reason).
SESSION_EXPIRED: Final = "session_expired"
TOKEN_REVOKED: Final = "token_revoked"
ACCESS_ENDED: Final = frozenset({SESSION_EXPIRED, TOKEN_REVOKED})


def _never_ends() -> str | None:
    """The watch of credentials that cannot end: one shared function, not one per stream."""
    return None


def access_watch(request: web.Request) -> Callable[[], str | None]:
    """For a long-lived response: call it now and then; it names the reason to stop, if any."""
    principal = request.get(PRINCIPAL)
    if principal is None or (principal.token_id is None and principal.expires_at is None):
        return _never_ends
    tokens = request.app[AUTHENTICATOR].tokens
    return lambda: _end_reason(tokens, principal)


def _end_reason(tokens: TokenStore, principal: Principal) -> str | None:
    """Why a stream opened by this principal must end now (None: it may go on)."""
    if principal.expires_at is not None and principal.expires_at <= time.time():
        return SESSION_EXPIRED
    if principal.token_id is not None and not tokens.holds(principal.token_id):
        return TOKEN_REVOKED
    return None


def access_ended_frame(request: web.Request, reason: str) -> bytes:
    """The last frame of a stream whose credentials stopped holding: `auth_expired`, with
    the sign-in page to go to (no id: there is nothing to resume)."""
    login = request.app[AUTHENTICATOR].login_path
    return event_frame(None, "auth_expired", dumps({"reason": reason, "login": login}))
