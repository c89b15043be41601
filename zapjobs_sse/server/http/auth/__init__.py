"""Authentication shared by pages, API and stream (README.md "Securing it",
docs/ARCHITECTURE.md "Authentication").

Modes: `none` (loopback only, see Settings.validate_security), `token` (scripts send
`Authorization: Bearer <token>`; browsers sign in on {base}/login and get a signed
session cookie, because EventSource cannot send headers), `proxy` (a user header set by
an authenticating reverse proxy, believed only from configured addresses).

One middleware guards every route the app has or will have; what stays open is a short
declared list: the login page and its assets, and the paths in PUBLIC_PATHS (health
probes by --health-open, /metrics by --metrics-open). Credentials are never read from
query strings and never logged: tokens are known to the logs only by a keyed fingerprint.

One module per concept, imported directly: tokens (TokenStore), sessions (SessionCodec),
throttle (SignInThrottle), authenticator (Authenticator, the `authenticate` middleware),
access (whether an open stream may go on), signin (the sign-in pages and setup_auth).
"""

__all__: list[str] = []
