"""The one settings object, built from CLI flags that fall back to ZAPJOBS_* variables."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Settings",
    "SettingsError",
    "add_arguments",
    "default_data_dir",
    "setting_fields",
    "settings_from_args",
]

LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def default_data_dir() -> str:
    """Where the embedded PostgreSQL keeps its data unless told otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "zapjobs-sse" / "pgdata")


def _setting(default: Any, help: str, *, choices: Sequence[str] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


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
    worker_stale_after: float = _setting(
        60.0, "Seconds without a heartbeat after which a worker is shown as stale."
    )
    db_check_interval: float = _setting(
        5.0, "Seconds of silence after which the LISTEN connection is checked with SELECT 1."
    )
    db_check_timeout: float = _setting(
        5.0, "Seconds the LISTEN connection check may take before the connection is dropped."
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
            "worker_stale_after",
            "db_check_interval",
            "db_check_timeout",
            "reconnect_max_delay",
            "poll_interval",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be greater than 0")
        for name in ("replay_events", "client_buffer_bytes", "max_filters", "pool_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.notify_queue_threshold <= 1:
            raise SettingsError("--notify-queue-threshold must be greater than 0 and at most 1")
        if not 0 <= self.port <= 65535:
            raise SettingsError("--port must be between 0 and 65535")
        if any(c in self.base_path for c in "?#% \t\r\n"):
            raise SettingsError("--base-path must be a plain URL path")
        return self


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
    for f in setting_fields():
        if names is not None and f.name not in names:
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
