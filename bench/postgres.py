"""The benchmark's PostgreSQL: an embedded server (or ZAPJOBS_BENCH_DSN), one database per use."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

from zapjobs_sse.db.embedded import EmbeddedPostgres
from zapjobs_sse.db.migrate import apply_migrations

__all__ = [
    "BenchPostgres",
    "connect",
    "drop_notify_triggers",
    "seed_runs",
    "seed_workers",
]

TEMPLATE = "zapjobs_bench_template"


def connect(dsn: str, application_name: str = "zapjobs_bench") -> psycopg2.extensions.connection:
    """An autocommit psycopg2 connection, as an executor holds one."""
    connection = psycopg2.connect(dsn, application_name=application_name)
    connection.autocommit = True
    return connection


class BenchPostgres:
    """The server every scenario uses; `database()` hands out fresh migrated databases."""

    def __init__(self, dsn: str | None) -> None:
        self._configured = dsn
        self._embedded: EmbeddedPostgres | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.admin_dsn = ""
        self.log_file: Path | None = None  # the server log, when it is ours to read
        self.version = ""

    def start(self) -> None:
        if self._configured:
            self.admin_dsn = self._configured
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="zapjobs-bench-")
            self._embedded = EmbeddedPostgres(Path(self._tmp.name) / "pgdata")
            self.admin_dsn = self._embedded.start()
            self.log_file = self._embedded.log_file
        self.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        self.execute(f"CREATE DATABASE {TEMPLATE}")
        asyncio.run(apply_migrations(self.dsn_of(TEMPLATE)))
        self.version = str(self.query("SHOW server_version")[0][0])

    def stop(self) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def dsn_of(self, name: str) -> str:
        dsn = self.admin_dsn
        if "://" in dsn:
            return urlunsplit(urlsplit(dsn)._replace(path="/" + name))
        return f"{dsn} dbname={name}"

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        connection = connect(self.admin_dsn)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
        finally:
            connection.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        connection = connect(self.admin_dsn)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    @contextmanager
    def database(self, label: str) -> Iterator[str]:
        """A fresh database with every migration applied; dropped afterwards."""
        name = f"zapjobs_bench_{label}_{uuid.uuid4().hex[:8]}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        try:
            yield self.dsn_of(name)
        finally:
            self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def seed_runs(dsn: str, count: int, job_types: int = 10, status: int = 2) -> list[str]:
    """Job definitions and `count` runs; returns the run ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO zapjobs.definitions (job_type_id, display_name)"
                " SELECT 'job-' || n, 'Job ' || n FROM generate_series(1, %s) AS n",
                (job_types,),
            )
            cursor.execute(
                "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at)"
                " SELECT r.id, 'job-' || (1 + r.n %% %s), %s, now() AT TIME ZONE 'utc'"
                " FROM unnest(%s::uuid[]) WITH ORDINALITY AS r(id, n)",
                (job_types, status, ids),
            )
    finally:
        connection.close()
    return ids


def seed_workers(dsn: str, count: int) -> None:
    """`count` workers with a fresh heartbeat (worker-1, worker-2, ...)."""
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
                " SELECT gen_random_uuid(), 'worker-' || n, 'host', n, now() AT TIME ZONE 'utc'"
                " FROM generate_series(1, %s) n ON CONFLICT DO NOTHING",
                (count,),
            )
    finally:
        connection.close()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def drop_notify_triggers(dsn: str) -> None:
    """Remove the sse_* notification triggers from a database (the writers' baseline)."""
    connection = connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tgname, tgrelid::regclass::text FROM pg_trigger"
                " WHERE tgname LIKE 'sse\\_%%' AND NOT tgisinternal"
            )
            for name, table in cursor.fetchall():
                cursor.execute(f"DROP TRIGGER {name} ON {table}")
    finally:
        connection.close()
