"""The dedicated LISTEN connection of a server process: the trigger's wake-ups arrive here."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg2

from .database import Connection, connect, queries, translate_error

__all__ = ["CHANNEL", "LISTENER_NAME", "Listener"]

# The channel of the notification triggers (migrations/002, zapjobs_sse/db/schema.sql).
CHANNEL = "zapjobs_sse"
# pg_stat_activity.application_name of the LISTEN connection, for operators.
LISTENER_NAME = "zapjobs-sse-listener"


class Listener:
    """The dedicated LISTEN connection of one server process (never a pooled one)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, dsn: str, *, timeout: float) -> Listener:
        connection = await connect(dsn, timeout=timeout, application_name=LISTENER_NAME)
        try:
            await connection.execute(f"LISTEN {CHANNEL}", timeout=timeout)
            rows = await connection.execute("SELECT pg_backend_pid() AS pid", timeout=timeout)
        except BaseException:
            await asyncio.shield(connection.close())
            raise
        connection.backend_pid = int(rows[0]["pid"])
        return cls(connection)

    async def next_batch(self, wait: float) -> list[str] | None:
        """Payloads received so far, waiting up to `wait` seconds for the first; None on silence."""
        notifies = self.connection.notifies
        try:
            async with asyncio.timeout(wait):
                first = await notifies.get()
        except TimeoutError:
            return None
        except (psycopg2.Error, OSError) as error:
            raise translate_error(error) from error
        batch = [first.payload]
        try:
            while not notifies.empty():
                batch.append((await notifies.get()).payload)
        except (psycopg2.Error, OSError) as error:
            raise translate_error(error) from error
        return batch

    async def check(self, timeout: float) -> float:
        """Prove the connection still answers (DatabaseUnavailable otherwise); return the
        share of PostgreSQL's NOTIFY queue in use."""
        rows = await self.connection.execute(queries["notification_queue_usage"], timeout=timeout)
        return float(rows[0]["usage"])

    async def close(self) -> None:
        with contextlib.suppress(psycopg2.Error, OSError):
            await self.connection.close()
