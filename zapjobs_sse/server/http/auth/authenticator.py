"""Who a request is from: the authenticator, and the middleware that guards every route.

What stays open is a short declared list: the sign-in pages, the login page's assets
(LOGIN_ASSETS) and the paths in PUBLIC_PATHS (health probes by --health-open, /metrics by
--metrics-open).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlencode, urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ....settings import (
    MIN_TOKEN_LENGTH,
    OPERATOR,
    VIEWER,
    Settings,
    SettingsError,
    split_list,
)
from ...keys import CAN_SIGN_OUT, PUBLIC_PATHS
from ..errors import answered, json_error
from .sessions import SESSION_COOKIE, SessionCodec
from .throttle import SignInThrottle
from .tokens import TokenStore, token_identity

__all__ = [
    "AUTHENTICATOR",
    "LOGIN_ASSETS",
    "PRINCIPAL",
    "Authenticator",
    "Principal",
    "authenticate",
    "identity_of",
    "names_other_site",
    "safe_next",
    "see_other",
]

log = structlog.get_logger("zapjobs_sse.server.http.auth.authenticator")

# Static files the login page needs before anybody has signed in (web/static/).
LOGIN_ASSETS: Final = frozenset({"dashboard.css", "theme.js", "favicon.svg"})
MAX_USER_LENGTH: Final = 255


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is from. `identity` is safe to log and to count streams by; `role`
    is viewer (reads) or operator (also acts)."""

    identity: str
    method: str  # none, bearer, session or proxy
    token_id: str | None = None
    expires_at: float | None = None
    role: str = VIEWER
    # The session cookie's value, to which its CSRF token is bound (session method only).
    session: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


PRINCIPAL = web.RequestKey("principal", Principal)


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class _Refusal:
    reason: str  # missing, invalid_token, invalid_session, untrusted_proxy, throttled
    retry_after: int | None = None


def _session_secret(settings: Settings) -> bytes:
    if settings.session_secret:
        return settings.session_secret.encode()
    if settings.session_secret_file:
        try:
            text = Path(settings.session_secret_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(f"--session-secret-file: cannot read it: {error}") from None
        if len(text) < MIN_TOKEN_LENGTH:
            raise SettingsError(
                f"--session-secret-file: the key needs at least {MIN_TOKEN_LENGTH} characters"
            )
        return text.encode()
    # Sessions then last until the process restarts, and work on this replica only.
    return secrets.token_bytes(32)


def safe_next(value: str | None, base: str) -> str:
    """A local path under the base path to go back to after signing in; the base otherwise.

    Anything that a browser could read as another origin (`//host`, `/\\host`, a scheme,
    control characters) or as a walk out of the base path (dot segments) is refused.
    """
    default = f"{base}/"
    if not value or len(value) > 2048 or value.startswith("//") or not value.isascii():
        return default
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.fragment:
        return default
    path = parts.path
    if not (path == base or path.startswith(f"{base}/")):
        return default
    if any(segment in (".", "..") for segment in path.split("/")):
        return default
    if path in (f"{base}/login", f"{base}/logout"):
        return default
    return value


def names_other_site(request: web.Request) -> bool:
    """True when the browser says the request comes from another site: Sec-Fetch-Site,
    else Origin, else Referer (`null` counts as another site). A request that names no
    source (a script) does not."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return False
    if source == "null" or not source:
        return True
    return urlsplit(source).netloc.lower() != request.host.lower()


def see_other(location: str) -> web.Response:
    """A 303 to `location`: where a browser goes to sign in, or back after signing in."""
    return web.Response(status=303, headers={"Location": location})


class Authenticator:
    """Decides who a request is from, and how a refused request is answered (the stream
    checks again as it runs: access.access_watch)."""

    def __init__(self, settings: Settings) -> None:
        settings.validate_security()
        self.mode = settings.auth
        self.base = settings.normalized_base_path
        self.login_path = f"{self.base}/login"
        self.cookie_path = self.base or "/"
        self.cookie_secure = settings.cookie_secure
        secret = _session_secret(settings)
        self.tokens = TokenStore(
            settings.token_list if self.mode == "token" else (),
            settings.tokens_file if self.mode == "token" else None,
            _derive(secret, "zapjobs-sse token id"),
        )
        self.sessions = SessionCodec(
            _derive(secret, "zapjobs-sse session"), settings.session_lifetime
        )
        self._csrf_key = _derive(secret, "zapjobs-sse csrf")
        self.notice_key = _derive(secret, "zapjobs-sse notice")
        self.throttle = SignInThrottle(settings.login_attempts_per_minute)
        self.proxy_header = settings.proxy_user_header
        self.proxy_groups_header = settings.proxy_groups_header
        self.operator_groups = frozenset(split_list(settings.operator_groups))
        self.proxies = settings.trusted_proxy_networks

    # -- deciding -----------------------------------------------------------------

    def is_open(self, request: web.Request) -> bool:
        """Routes that need no credentials: sign-in, its assets, the declared public paths."""
        resource = request.match_info.route.resource
        if resource is not None and resource.name in ("login", "logout"):
            return True
        if resource is not None and resource.name == "static":
            return request.match_info.get("filename", "") in LOGIN_ASSETS
        return request.path in request.app.get(PUBLIC_PATHS, frozenset())

    def identify(self, request: web.Request) -> Principal | _Refusal:
        if self.mode == "none":
            # Loopback only (validate_security): the local user is an operator.
            return Principal(f"address:{request.remote or ''}", "none", role=OPERATOR)
        if self.mode == "proxy":
            return self._from_proxy(request)
        header = request.headers.get("Authorization")
        if header is not None:
            return self._from_bearer(request, header)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None:
            return self._from_cookie(cookie)
        return _Refusal("missing")

    def _from_proxy(self, request: web.Request) -> Principal | _Refusal:
        user = request.headers.get(self.proxy_header, "").strip()
        if not user:
            return _Refusal("missing")
        try:
            address = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return _Refusal("untrusted_proxy")
        if not any(address in network for network in self.proxies):
            log.warning("proxy_header_from_untrusted_address", remote=request.remote)
            return _Refusal("untrusted_proxy")
        if len(user) > MAX_USER_LENGTH or not user.isprintable():
            return _Refusal("missing")
        groups = split_list(request.headers.get(self.proxy_groups_header, ""))
        role = OPERATOR if self.operator_groups.intersection(groups) else VIEWER
        return Principal(f"user:{user}", "proxy", role=role)

    def _from_bearer(self, request: web.Request, header: str) -> Principal | _Refusal:
        address = request.remote or ""
        retry_after = self.throttle.retry_after(address)
        if retry_after is not None:
            return _Refusal("throttled", retry_after)
        scheme, _, token = header.strip().partition(" ")
        token_id = self.tokens.match(token.strip()) if scheme.lower() == "bearer" else None
        if token_id is None:
            self.throttle.failed(address)
            log.info("bearer_token_refused", remote=address)
            return _Refusal("invalid_token")
        role = self.tokens.role(token_id) or VIEWER
        return Principal(token_identity(token_id), "bearer", token_id=token_id, role=role)

    def _from_cookie(self, cookie: str) -> Principal | _Refusal:
        session = self.sessions.read(cookie)
        if session is None:
            return _Refusal("invalid_session")
        current = self.tokens.role(session.token_id)
        if current is None:
            return _Refusal("invalid_session")
        # The role signed in with, unless the tokens file has lowered it since.
        role = OPERATOR if session.role == current == OPERATOR else VIEWER
        return Principal(
            token_identity(session.token_id),
            "session",
            session.token_id,
            float(session.expires),
            role=role,
            session=cookie,
        )

    # -- cross-site request forgery -----------------------------------------------

    def csrf_token(self, request: web.Request) -> str:
        """The token a page's forms send back (`csrf_token` field, or the X-CSRF-Token
        header): an HMAC of the session cookie, or of the identity without one."""
        principal = request.get(PRINCIPAL)
        binding = "" if principal is None else principal.session or principal.identity
        digest = hmac.new(self._csrf_key, binding.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def forgery_refusal(self, request: web.Request, supplied: str | None) -> str | None:
        """Why a state-changing request must be refused as a possible forgery, if it must.

        Bearer calls need nothing. Every other POST is refused when the browser names
        another site; one that a session cookie authenticates also needs the CSRF token
        bound to that session (the cookie is sent whoever made the page that posts)."""
        principal = request.get(PRINCIPAL)
        if principal is None or principal.method == "bearer":
            return None
        if names_other_site(request):
            return "cross-site request refused"
        if principal.method == "session":
            expected = self.csrf_token(request)
            if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
                return "csrf_token: missing or not the one of this session"
        return None

    # -- answering ----------------------------------------------------------------

    def wants_page(self, request: web.Request) -> bool:
        """A browser navigating to a page (redirected to sign in rather than told 401)."""
        return (
            self.mode == "token"
            and request.method in ("GET", "HEAD")
            and "text/html" in request.headers.get("Accept", "")
            and not request.path.startswith(f"{self.base}/api/")
            and request.path != f"{self.base}/events"
        )

    def login_url(self, next_path: str | None = None) -> str:
        if next_path is None or next_path == f"{self.base}/":
            return self.login_path
        return f"{self.login_path}?{urlencode({'next': next_path})}"

    def refuse(self, request: web.Request, refusal: _Refusal) -> web.StreamResponse:
        if refusal.reason == "throttled":
            response: web.StreamResponse = json_error(
                429,
                "too many failed sign-ins from this address; try again later",
                **{"Retry-After": str(refusal.retry_after or 60)},
            )
        elif self.wants_page(request):
            response = see_other(self.login_url(safe_next(request.path_qs, self.base)))
        else:
            messages = {
                "missing": "authentication required",
                "invalid_token": "invalid token",
                "invalid_session": "session expired or invalid: sign in again",
                "untrusted_proxy": "authentication required",
            }
            challenge = (
                'Bearer realm="zapjobs"' if self.mode == "token" else 'Proxy realm="zapjobs"'
            )
            if refusal.reason == "invalid_token":
                challenge += ', error="invalid_token"'
            response = json_error(
                401,
                messages[refusal.reason],
                **{"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
            )
        if refusal.reason == "invalid_session":
            response.del_cookie(SESSION_COOKIE, path=self.cookie_path)
        return response

    def set_session(
        self, request: web.Request, response: web.StreamResponse, token_id: str
    ) -> None:
        """The session cookie of this token, carrying the token's role."""
        value, _ = self.sessions.issue(token_id, self.tokens.role(token_id) or VIEWER)
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=math.ceil(self.sessions.lifetime),
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=self.cookie_secure or request.secure,
        )


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


@web.middleware
def authenticate(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Let a request through only with valid credentials (or to an open route).

    Not a coroutine, like security.cors_preflight: it returns the handler's awaitable.
    """
    authenticator = request.app[AUTHENTICATOR]
    if authenticator.is_open(request):
        return handler(request)
    outcome = authenticator.identify(request)
    if isinstance(outcome, _Refusal):
        return answered(authenticator.refuse(request, outcome))
    request[PRINCIPAL] = outcome
    if outcome.method == "session":
        request[CAN_SIGN_OUT] = True
    return handler(request)


def identity_of(request: web.Request) -> str:
    """Who the request is from, for limits and logs (the address when nobody signed in)."""
    principal = request.get(PRINCIPAL)
    return principal.identity if principal is not None else f"address:{request.remote or ''}"
