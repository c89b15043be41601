"""The one settings object, built from CLI flags that fall back to ZAPJOBS_* variables."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MIN_TOKEN_LENGTH",
    "OPERATOR",
    "ROLES",
    "VIEWER",
    "Settings",
    "SettingsError",
    "add_arguments",
    "default_data_dir",
    "is_loopback_host",
    "setting_fields",
    "settings_from_args",
    "split_list",
    "token_entry",
]

MIN_TOKEN_LENGTH = 16

# Roles: a viewer reads everything; an operator also acts (trigger, cancel, retry, ...).
VIEWER = "viewer"
OPERATOR = "operator"
ROLES = (VIEWER, OPERATOR)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def default_data_dir(name: str = "pgdata") -> str:
    """Where an embedded PostgreSQL keeps its data unless told otherwise (`serve` uses
    pgdata, the demo demo-pgdata)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "zapjobs-sse" / name)


def _setting(
    default: Any, help: str, *, choices: Sequence[str] | None = None, secret: bool = False
) -> Any:
    # A secret comes from the environment only (never a flag, never in a repr).
    return field(
        default=default,
        repr=not secret,
        metadata={"help": help, "choices": choices, "secret": secret},
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server can be told. Field name `x_y` is flag `--x-y` and env `ZAPJOBS_X_Y`."""

    dsn: str | None = _setting(
        None,
        "PostgreSQL connection string. Unset: libpq PG* variables if any are set, "
        "otherwise an embedded PostgreSQL in --data-dir.",
    )
    data_dir: str = _setting(default_data_dir(), "Data directory of the embedded PostgreSQL.")
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8080, "Port to listen on.")
    base_path: str = _setting("/zapjobs", "URL prefix of every route (pages, API, stream).")
    heartbeat: float = _setting(15.0, "Seconds between SSE heartbeat comments on an idle stream.")
    retry_ms: int = _setting(3000, "Reconnection delay hint sent to clients (SSE retry:), in ms.")
    replay_events: int = _setting(
        10000, "Recent events kept for Last-Event-ID resume (the replay window)."
    )
    client_buffer_bytes: int = _setting(
        1048576, "Unsent bytes a client may fall behind before it is disconnected."
    )
    max_filters: int = _setting(100, "Maximum run + job_type filters of one stream.")
    stats_interval: float = _setting(
        0.5, "Minimum seconds between two StatsUpdated events (changes are coalesced)."
    )
    stats_refresh: float = _setting(
        10.0, "Seconds between stats refreshes when nothing changes (time-based figures)."
    )
    stats_exact_limit: int = _setting(
        50000, "Tables with more rows than this report estimated totals."
    )
    rollup_interval: float = _setting(
        10.0,
        "Seconds between two writes of the hourly rollups behind the 7- and 30-day insights.",
    )
    search_window: int = _setting(
        100000,
        "Newest runs whose text the runs search looks through (an id, or its first 8 hex "
        "digits or more, is found among all runs): a search never scans an unbounded table.",
    )
    worker_stale_after: float = _setting(
        60.0, "Seconds without a heartbeat after which a worker is shown as stale."
    )
    feed: str = _setting(
        "notify",
        "Where changes come from: notify (the triggers' notifications, one LISTEN connection "
        "per process) or wal (logical decoding of the write-ahead log from a temporary "
        "replication slot per process: no cost to the writers; needs wal_level = logical, "
        "see docs/WAL_FEED.md).",
        choices=("notify", "wal"),
    )
    db_check_interval: float = _setting(
        5.0, "Seconds of silence after which the feed's connection is checked."
    )
    db_check_timeout: float = _setting(
        5.0, "Seconds the feed connection's check may take before the connection is dropped."
    )
    reconnect_max_delay: float = _setting(
        10.0, "Upper bound of the reconnect backoff to PostgreSQL, in seconds."
    )
    pool_size: int = _setting(5, "Connections in the query pool (the LISTEN one is extra).")
    poll_interval: float = _setting(
        5.0, "Seconds between JSON API polls of a browser that fell back to polling."
    )
    shutdown_grace: float = _setting(
        5.0, "Seconds open streams get to close on shutdown before they are cut."
    )
    log_format: str = _setting(
        "auto",
        "Log format: json, console, or auto (console on a terminal, json otherwise).",
        choices=("auto", "json", "console"),
    )
    log_level: str = _setting("info", "Log level.", choices=("debug", "info", "warning", "error"))
    access_log: bool = _setting(False, "Log one line per HTTP request.")
    notify_queue_threshold: float = _setting(
        0.5,
        "Share of PostgreSQL's NOTIFY queue (0-1) in use above which /ready reports not ready.",
    )
    metrics_open: bool = _setting(
        False, "Serve /metrics without authentication (for a scraper inside a trusted network)."
    )
    auth: str = _setting(
        "none",
        "Authentication: none (loopback addresses only), token (bearer tokens and a login "
        "page), proxy (a user header set by an authenticating reverse proxy).",
        choices=("none", "token", "proxy"),
    )
    insecure_no_auth: bool = _setting(
        False, "Allow --auth none on an address that is not a loopback address (unsafe)."
    )
    tokens: str | None = _setting(
        None,
        "Access tokens, comma separated (at least 16 characters each), each optionally "
        "preceded by its role: 'operator <token>' or 'viewer <token>' (a bare token is a viewer).",
        secret=True,
    )
    tokens_file: str | None = _setting(
        None,
        "File of access tokens, one per line ('#' comments), each optionally preceded by its "
        "role: 'operator <token>' or 'viewer <token>' (a bare token is a viewer); re-read "
        "when it changes.",
    )
    session_secret: str | None = _setting(
        None,
        "Key that signs session cookies (share it between replicas). Unset: random per process.",
        secret=True,
    )
    session_secret_file: str | None = _setting(
        None, "File holding the key that signs session cookies (instead of the variable)."
    )
    session_lifetime: float = _setting(
        28800.0, "Seconds a browser session lasts after signing in; its streams end then."
    )
    cookie_secure: bool = _setting(
        False, "Always mark the session cookie Secure (set it behind a TLS-terminating proxy)."
    )
    login_attempts_per_minute: int = _setting(
        10, "Failed sign-ins (and wrong bearer tokens) allowed per client address per minute."
    )
    proxy_user_header: str = _setting(
        "X-Forwarded-User", "Header holding the user name set by the authenticating proxy."
    )
    trusted_proxies: str = _setting(
        "", "Addresses (CIDRs, comma separated) whose --proxy-user-header is believed."
    )
    proxy_groups_header: str = _setting(
        "X-Forwarded-Groups",
        "Header holding the user's groups (comma separated), set by the authenticating proxy.",
    )
    operator_groups: str = _setting(
        "",
        "Groups (comma separated) whose members are operators in --auth proxy mode; "
        "everybody else is a viewer.",
    )
    read_only: bool = _setting(
        False, "Refuse every action (trigger, cancel, retry, dead letter, enable) to everybody."
    )
    action_batch_size: int = _setting(
        500, "Dead-letter entries changed per transaction by a bulk action."
    )
    idempotency_hours: float = _setting(
        24.0, "Hours an action's idempotency key is remembered (a resubmitted form acts once)."
    )
    health_open: bool = _setting(
        True,
        "Serve /health and /ready without authentication (for probes); --no-health-open "
        "guards them like every other route.",
    )
    cors_origins: str = _setting(
        "",
        "Other origins (scheme://host[:port], comma separated) allowed to read the stream "
        "and the API with credentials.",
    )
    max_streams: int = _setting(1000, "Maximum concurrent event streams of the process.")
    max_streams_per_identity: int = _setting(
        20, "Maximum concurrent event streams per user or token (per address without auth)."
    )

    @property
    def normalized_base_path(self) -> str:
        """The base path with one leading slash and no trailing slash ('' for the root)."""
        return "/" + self.base_path.strip("/") if self.base_path.strip("/") else ""

    def uses_embedded_database(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when no DSN and no libpq variable names a server."""
        env = os.environ if environ is None else environ
        return self.dsn is None and not any(env.get(name) for name in LIBPQ_VARIABLES)

    def validate(self) -> Settings:
        """Check the values that argparse cannot; raise SettingsError naming the setting."""
        positive = (
            "heartbeat",
            "stats_interval",
            "stats_refresh",
            "rollup_interval",
            "worker_stale_after",
            "db_check_interval",
            "db_check_timeout",
            "reconnect_max_delay",
            "poll_interval",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be greater than 0")
        for name in (
            "replay_events",
            "client_buffer_bytes",
            "max_filters",
            "pool_size",
            "search_window",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.notify_queue_threshold <= 1:
            raise SettingsError("--notify-queue-threshold must be greater than 0 and at most 1")
        if not 0 <= self.port <= 65535:
            raise SettingsError("--port must be between 0 and 65535")
        if any(c in self.base_path for c in "?#% \t\r\n"):
            raise SettingsError("--base-path must be a plain URL path")
        return self.validate_security()

    @property
    def token_list(self) -> tuple[str, ...]:
        """The tokens of ZAPJOBS_TOKENS (the tokens file is read by the authenticator)."""
        return split_list(self.tokens or "")

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        try:
            return tuple(
                ipaddress.ip_network(item, strict=False)
                for item in split_list(self.trusted_proxies)
            )
        except ValueError as error:
            raise SettingsError(f"--trusted-proxies: {error}") from None

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """The allowed cross origins, as browsers send them in the Origin header."""
        origins = []
        for item in split_list(self.cors_origins):
            parts = urlsplit(item)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or "*" in item
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise SettingsError(
                    f"--cors-origins: {item!r} is not an origin like https://host[:port]"
                )
            origins.append(f"{parts.scheme}://{parts.netloc}".lower())
        return tuple(origins)

    def validate_security(self) -> Settings:
        """Check authentication and limits; refuse an open server on a public address."""
        if self.auth == "none" and not self.insecure_no_auth and not is_loopback_host(self.host):
            raise SettingsError(
                f"refusing to serve without authentication on {self.host!r}, which is not a "
                "loopback address. Either use --auth token (tokens in the ZAPJOBS_TOKENS "
                "variable or in --tokens-file), or --auth proxy --trusted-proxies CIDR behind "
                "an authenticating reverse proxy, or listen on 127.0.0.1; "
                "--insecure-no-auth serves everyone without authentication anyway"
            )
        if self.auth == "token" and not self.token_list and not self.tokens_file:
            raise SettingsError(
                "--auth token needs tokens: set ZAPJOBS_TOKENS (comma separated) "
                "or --tokens-file (one token per line)"
            )
        for entry in self.token_list:
            _, token = token_entry(entry, "ZAPJOBS_TOKENS")
            if len(token) < MIN_TOKEN_LENGTH:
                raise SettingsError(
                    f"ZAPJOBS_TOKENS: every token needs at least {MIN_TOKEN_LENGTH} characters "
                    "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
                )
        for name in ("tokens_file", "session_secret_file"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise SettingsError(f"--{name.replace('_', '-')}: cannot read {path}")
        if self.session_secret is not None and len(self.session_secret) < MIN_TOKEN_LENGTH:
            raise SettingsError(
                f"ZAPJOBS_SESSION_SECRET: needs at least {MIN_TOKEN_LENGTH} characters"
            )
        if self.auth == "proxy" and not self.trusted_proxy_networks:
            raise SettingsError(
                "--auth proxy needs --trusted-proxies: the addresses of the proxy whose "
                f"{self.proxy_user_header} header is to be believed"
            )
        for name in ("proxy_user_header", "proxy_groups_header"):
            header = getattr(self, name)
            if not header or any(c in header for c in ' \t\r\n:()<>@,;\\"/[]?={}'):
                raise SettingsError(f"--{name.replace('_', '-')} must be an HTTP header name")
        self.cors_origin_list  # noqa: B018 (raises SettingsError on a bad origin)
        if self.session_lifetime <= 0:
            raise SettingsError("--session-lifetime must be greater than 0")
        if self.idempotency_hours <= 0:
            raise SettingsError("--idempotency-hours must be greater than 0")
        for name in (
            "login_attempts_per_minute",
            "max_streams",
            "max_streams_per_identity",
            "action_batch_size",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
        return self


def token_entry(entry: str, where: str) -> tuple[str, str]:
    """(role, token) of a tokens-file line or ZAPJOBS_TOKENS item: `operator <token>`,
    `viewer <token>`, or a bare token (a viewer). SettingsError names `where` otherwise."""
    words = entry.split()
    if len(words) == 1:
        return VIEWER, words[0]
    if len(words) == 2 and words[0].lower() in ROLES:
        return words[0].lower(), words[1]
    raise SettingsError(
        f"{where}: an entry is 'operator <token>', 'viewer <token>' or a bare token"
    )


def split_list(text: str) -> tuple[str, ...]:
    """The non-empty items of a comma-separated setting."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def is_loopback_host(host: str) -> bool:
    """True when every address the server listens on is a loopback address."""
    names = split_list(host)
    if not names:
        return False
    for name in names:
        if name.lower() == "localhost":
            continue
        try:
            if not ipaddress.ip_address(name.strip("[]")).is_loopback:
                return False
        except ValueError:
            return False
    return True


def setting_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields of Settings, in declaration order."""
    return dataclasses.fields(Settings)


def env_name(name: str) -> str:
    return "ZAPJOBS_" + name.upper()


def _parse_env(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{env_name(f.name)}={raw!r} is not a valid {kind}") from None
    return raw


def _env_default(f: dataclasses.Field[Any], env: Mapping[str, str]) -> Any:
    variable = env_name(f.name)
    return _parse_env(f, env[variable]) if variable in env else f.default


def _value_type(f: dataclasses.Field[Any]) -> Any:
    kind = str(f.type)
    if kind == "int":
        return int
    if kind == "float":
        return float
    return str


def add_arguments(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per setting (or per named setting); defaults come from ZAPJOBS_* variables."""
    env = os.environ if environ is None else environ
    secrets = []
    for f in setting_fields():
        if names is not None and f.name not in names:
            continue
        if f.metadata["secret"]:
            secrets.append(f"{env_name(f.name)}: {f.metadata['help']}")
            continue
        flag = "--" + f.name.replace("_", "-")
        variable = env_name(f.name)
        default = _env_default(f, env)
        shown = "unset" if f.default is None else f.default
        help_text = f"{f.metadata['help']} [env: {variable}; default: {shown}]"
        if str(f.type) == "bool":
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag,
                dest=f.name,
                type=_value_type(f),
                default=default,
                choices=f.metadata["choices"],
                metavar=f.name.upper() if f.metadata["choices"] is None else None,
                help=help_text,
            )
    if secrets:
        # `--tokens abc` must fail, not be taken as an abbreviation of --tokens-file.
        parser.allow_abbrev = False
        parser.epilog = "Secrets come from the environment only, never from flags: " + " ".join(
            secrets
        )


def settings_from_args(namespace: argparse.Namespace, **overrides: Any) -> Settings:
    """Build validated Settings from parsed arguments (settings not on the parser keep defaults)."""
    values = {
        f.name: getattr(namespace, f.name)
        if hasattr(namespace, f.name)
        else _env_default(f, os.environ)
        for f in setting_fields()
    }
    values.update(overrides)
    return Settings(**values).validate()
