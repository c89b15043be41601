"""Authentication shared by pages, API and stream (DESIGN section 5).

Modes: `none` (loopback only, see Settings.validate_security), `token` (scripts send
`Authorization: Bearer <token>`; browsers sign in on {base}/login and get a signed
session cookie, because EventSource cannot send headers), `proxy` (a user header set by
an authenticating reverse proxy, believed only from configured addresses).

One middleware guards every route the app has or will have; what stays open is a short
declared list: the login page and its assets, and the paths in PUBLIC_PATHS (health
probes by --health-open, /metrics by --metrics-open). Credentials are never read from
query strings and never logged: tokens are known to the logs only by a keyed fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlencode, urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ....settings import MIN_TOKEN_LENGTH, Settings, SettingsError, is_loopback_host
from ...keys import CAN_SIGN_OUT, PUBLIC_PATHS, SETTINGS
from ..errors import answered, json_error
from ..layout import render_page

__all__ = [
    "ACCESS_ENDED",
    "AUTHENTICATOR",
    "LOGIN_ASSETS",
    "PRINCIPAL",
    "SESSION_COOKIE",
    "Authenticator",
    "Principal",
    "SessionCodec",
    "SignInThrottle",
    "TokenStore",
    "access_ended_frame",
    "access_watch",
    "authenticate",
    "identity_of",
    "safe_next",
    "setup_auth",
]

log = structlog.get_logger("zapjobs_sse.server.http.auth")

SESSION_COOKIE: Final = "zapjobs_session"
# Why a stream ended because its credentials stopped holding (Subscription.close_reason).
SESSION_EXPIRED: Final = "session_expired"
TOKEN_REVOKED: Final = "token_revoked"
ACCESS_ENDED: Final = frozenset({SESSION_EXPIRED, TOKEN_REVOKED})
# Static files the login page needs before anybody has signed in (web/static/).
LOGIN_ASSETS: Final = frozenset({"dashboard.css", "theme.js"})
MAX_COOKIE_LENGTH: Final = 512
MAX_USER_LENGTH: Final = 255


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is from. `identity` is safe to log and to count streams by."""

    identity: str
    method: str  # none, bearer, session or proxy
    token_id: str | None = None
    expires_at: float | None = None


PRINCIPAL = web.RequestKey("principal", Principal)


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def _token_identity(token_id: str) -> str:
    return f"token:{token_id[:12]}"


class TokenStore:
    """The configured tokens, known only by keyed digests; the file is re-read on change.

    Removing a token from the file revokes it at once: bearer requests fail and the
    sessions and streams opened with it end (Authenticator.end_reason).
    """

    def __init__(
        self,
        env_tokens: Iterable[str],
        path: str | None,
        key: bytes,
        *,
        recheck: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._env_ids = frozenset(_mac(key, token) for token in env_tokens)
        self._path = Path(path) if path else None
        self._recheck = recheck
        self._clock = clock
        self._checked_at = -math.inf
        self._file_state: tuple[int, int, int, int] | None = None
        self._file_ids: frozenset[str] = frozenset()
        self._ids: tuple[str, ...] = tuple(self._env_ids)
        if self._path is not None:
            self._load(strict=True)

    def _load(self, *, strict: bool) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
            state = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if state == self._file_state:
                return
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            if strict:
                raise SettingsError(f"--tokens-file: cannot read {self._path}: {error}") from None
            if self._file_state is not None or self._file_ids:
                log.error("tokens_file_unreadable", path=str(self._path), error=str(error))
            # Fail closed: a file that is gone holds no tokens.
            self._file_state, self._file_ids = None, frozenset()
            self._ids = tuple(self._env_ids)
            return
        tokens = [line.strip() for line in text.splitlines()]
        tokens = [token for token in tokens if token and not token.startswith("#")]
        short = [token for token in tokens if len(token) < MIN_TOKEN_LENGTH]
        if short:
            if strict:
                raise SettingsError(
                    f"--tokens-file: every token needs at least {MIN_TOKEN_LENGTH} characters"
                )
            log.warning("tokens_file_short_tokens_ignored", path=str(self._path), count=len(short))
        valid = [token for token in tokens if len(token) >= MIN_TOKEN_LENGTH]
        if strict and not valid and not self._env_ids:
            raise SettingsError(f"--tokens-file: {self._path} holds no token")
        self._file_state = state
        self._file_ids = frozenset(_mac(self._key, token) for token in valid)
        self._ids = tuple(self._env_ids | self._file_ids)
        if not strict:
            log.info("tokens_file_reloaded", path=str(self._path), tokens=len(self._file_ids))

    def refresh(self) -> None:
        """Re-read the file if it changed (looked at no more often than every `recheck` s)."""
        if self._path is None:
            return
        now = self._clock()
        if now - self._checked_at < self._recheck:
            return
        self._checked_at = now
        self._load(strict=False)

    def match(self, candidate: str) -> str | None:
        """The id of the token equal to `candidate`, comparing in constant time."""
        self.refresh()
        candidate_id = _mac(self._key, candidate)
        found = None
        for token_id in self._ids:  # no early exit: every comparison is made
            if hmac.compare_digest(candidate_id, token_id):
                found = token_id
        return found

    def holds(self, token_id: str) -> bool:
        """True while the token with this id is still configured."""
        self.refresh()
        return any(hmac.compare_digest(token_id, known) for known in self._ids)


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


class SignInThrottle:
    """Failed sign-ins per client address in a sliding minute; bounded memory."""

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = 60.0,
        max_addresses: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = per_minute
        self._window = window
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def retry_after(self, address: str) -> int | None:
        """Seconds until this address may try again, or None if it may now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self._limit:
            return None
        return max(1, math.ceil(failures[0] + self._window - self._clock()))

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=self._limit)
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
        failures.append(self._clock())


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


class Authenticator:
    """Decides who a request is from, and whether a long-lived stream may go on."""

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
        self.throttle = SignInThrottle(settings.login_attempts_per_minute)
        self.proxy_header = settings.proxy_user_header
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
            return Principal(f"address:{request.remote or ''}", "none")
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
        return Principal(f"user:{user}", "proxy")

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
        return Principal(_token_identity(token_id), "bearer", token_id=token_id)

    def _from_cookie(self, cookie: str) -> Principal | _Refusal:
        session = self.sessions.read(cookie)
        if session is None:
            return _Refusal("invalid_session")
        token_id, expires = session
        if not self.tokens.holds(token_id):
            return _Refusal("invalid_session")
        return Principal(_token_identity(token_id), "session", token_id, float(expires))

    def end_reason(self, principal: Principal) -> str | None:
        """Why a stream opened by this principal must end now (None: it may go on)."""
        if principal.expires_at is not None and principal.expires_at <= time.time():
            return SESSION_EXPIRED
        if principal.token_id is not None and not self.tokens.holds(principal.token_id):
            return TOKEN_REVOKED
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
            response = _redirect(self.login_url(safe_next(request.path_qs, self.base)))
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
        value, _ = self.sessions.issue(token_id)
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


def _never_ends() -> str | None:
    """The watch of credentials that cannot end: one shared function, not one per stream."""
    return None


def access_watch(request: web.Request) -> Callable[[], str | None]:
    """For a long-lived response: call it now and then; it names the reason to stop, if any."""
    principal = request.get(PRINCIPAL)
    if principal is None or (principal.token_id is None and principal.expires_at is None):
        return _never_ends
    authenticator = request.app[AUTHENTICATOR]
    return lambda: authenticator.end_reason(principal)


def access_ended_frame(request: web.Request, reason: str) -> bytes:
    """The last frame of a stream whose credentials stopped holding: `auth_expired`, with
    the sign-in page to go to (no id: there is nothing to resume)."""
    login = request.app[AUTHENTICATOR].login_path
    data = json.dumps({"reason": reason, "login": login}, separators=(",", ":"))
    return f"event: auth_expired\ndata: {data}\n\n".encode()


# -- sign-in pages -----------------------------------------------------------------


def _render_login(
    request: web.Request, *, status: int = 200, error: str | None = None, next_path: str
) -> web.Response:
    context = {
        "title": "Sign in",
        "page": "login",
        "login_path": request.app[AUTHENTICATOR].login_path,
        "next_path": next_path,
        "error": error,
    }
    response = render_page("login.html", request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _same_origin(request: web.Request) -> bool:
    """CSRF check of a form POST: the browser says it comes from this very origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == request.host.lower()


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET {base}/login: the sign-in form (or straight back when already signed in)."""
    authenticator = request.app[AUTHENTICATOR]
    next_path = safe_next(request.query.get("next"), authenticator.base)
    if authenticator.mode != "token" or isinstance(authenticator.identify(request), Principal):
        return _redirect(next_path)
    return _render_login(request, next_path=next_path)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST {base}/login: check the token, set the session cookie, go back where one was."""
    authenticator = request.app[AUTHENTICATOR]
    if authenticator.mode != "token":
        return _redirect(f"{authenticator.base}/")
    if not _same_origin(request):
        log.warning("sign_in_cross_origin_refused", remote=request.remote)
        return json_error(403, "cross-origin sign-in refused")
    form = await request.post()
    next_value = form.get("next")
    next_path = safe_next(next_value if isinstance(next_value, str) else None, authenticator.base)
    address = request.remote or ""
    retry_after = authenticator.throttle.retry_after(address)
    if retry_after is not None:
        response = _render_login(
            request,
            status=429,
            error="Too many failed sign-ins. Wait a minute and try again.",
            next_path=next_path,
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    token = form.get("token")
    token_id = authenticator.tokens.match(token.strip()) if isinstance(token, str) else None
    if token_id is None:
        authenticator.throttle.failed(address)
        log.info("sign_in_failed", remote=address)
        return _render_login(
            request, status=401, error="That token is not valid.", next_path=next_path
        )
    log.info("signed_in", identity=_token_identity(token_id), remote=address)
    response = _redirect(next_path)
    authenticator.set_session(request, response, token_id)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """{base}/logout: forget the session cookie, back to the sign-in page."""
    authenticator = request.app[AUTHENTICATOR]
    if request.method == "POST" and not _same_origin(request):
        return json_error(403, "cross-origin sign-out refused")
    target = authenticator.login_path if authenticator.mode == "token" else f"{authenticator.base}/"
    response = _redirect(target)
    response.del_cookie(SESSION_COOKIE, path=authenticator.cookie_path)
    return response


def setup_auth(app: web.Application) -> None:
    """Create the authenticator and the sign-in routes (the middleware is `authenticate`)."""
    settings = app[SETTINGS]
    app[AUTHENTICATOR] = Authenticator(settings)
    if settings.auth == "none" and not is_loopback_host(settings.host):
        log.warning(
            "authentication_disabled",
            host=settings.host,
            hint="anyone who can reach this address sees every job; use --auth token or proxy",
        )
    base = settings.normalized_base_path
    app.router.add_get(f"{base}/login", login_page, name="login")
    app.router.add_post(f"{base}/login", login_submit, name="login")
    app.router.add_get(f"{base}/logout", logout, name="logout")
    app.router.add_post(f"{base}/logout", logout, name="logout")
    if settings.tokens and settings.auth != "token":
        log.warning("tokens_ignored", hint="ZAPJOBS_TOKENS is set but --auth is not token")
