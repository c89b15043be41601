"""The replication connection of a server process: the WAL feed's changes arrive here.

One logical replication connection per process, with a TEMPORARY slot of its own
(PostgreSQL drops it when the connection ends, however it ends: a crashed or killed
server never leaves a slot behind holding WAL), decoded by the built-in `pgoutput` plugin
from the publication `zapjobs_sse`. Driven by the event loop: the socket is watched with
`loop.add_reader`, `read_message()` is called until it returns None, and the position
of every transaction read is recorded with `send_feedback` (psycopg2 reports it to the
server every 10 s, its status interval, and at each check). No thread, no polling loop.

Changes are handed over by transaction: those of a transaction whose Commit has not
arrived yet are held back, so that a reader sees each transaction whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from ..wakeup import Wakeup
from .database import (
    _KEEPALIVES,
    DatabaseError,
    DatabaseUnavailable,
    connect,
    mask_dsn,
    queries,
    translate_error,
)
from .pgoutput import Begin, Commit, PgOutputDecoder, RowChange, Truncate

__all__ = [
    "PUBLICATION",
    "REPLICATION_NAME",
    "CommittedChanges",
    "FeedUnavailable",
    "ReplicationStream",
    "check_wal_feed",
]

# The publication of the zapjobs tables (migrations/006, zapjobs_sse/db/schema.sql).
PUBLICATION = "zapjobs_sse"
# pg_stat_activity.application_name of the replication connection, for operators.
REPLICATION_NAME = "zapjobs-sse-wal"
# CREATE_REPLICATION_SLOT waits for the transactions running at that moment to end.
SLOT_TIMEOUT = 60.0
# Changes of one transaction held whole; past that, each further change keeps its key (and
# the column its table's rows are grouped by) once: memory bounded by distinct keys, and
# the reader reads those rows by key, as after a notification.
TRANSACTION_ROWS = 10_000
GROUPED_BY = {"logs": ("run_id",)}


class FeedUnavailable(DatabaseError):
    """The database lacks what --feed wal needs; the message names it and how to set it."""


@dataclass(slots=True)
class CommittedChanges:
    """The row changes of one committed transaction, in the order it made them (past
    TRANSACTION_ROWS, their keys once each)."""

    commit_time: datetime
    changes: list[RowChange | Truncate] = field(default_factory=list)
    _held_keys: set[tuple[str, str, str]] | None = field(default=None, repr=False)

    def add(self, change: RowChange | Truncate) -> None:
        if isinstance(change, Truncate) or (
            self._held_keys is None and len(self.changes) < TRANSACTION_ROWS
        ):
            self.changes.append(change)
            return
        if self._held_keys is None:
            self._held_keys = set()
        keys = change.keys(*GROUPED_BY.get(change.table, ()))
        mark = (change.operation, change.table, repr(sorted(keys.row.items())))
        if mark not in self._held_keys:
            self._held_keys.add(mark)
            self.changes.append(keys)


async def _poll(raw: Any) -> None:
    """Drive an asynchronous psycopg2 connection until its current operation is done."""
    loop = asyncio.get_running_loop()
    fd = raw.fileno()
    waits = {
        psycopg2.extensions.POLL_READ: (loop.add_reader, loop.remove_reader),
        psycopg2.extensions.POLL_WRITE: (loop.add_writer, loop.remove_writer),
    }
    while (state := raw.poll()) != psycopg2.extensions.POLL_OK:
        if state not in waits:
            raise DatabaseUnavailable(f"unexpected poll state {state}")
        watch, unwatch = waits[state]
        ready = loop.create_future()
        watch(fd, ready.set_result, None)
        try:
            await ready
        finally:
            unwatch(fd)


def _lost(error: BaseException) -> DatabaseUnavailable:
    # Any error of a streaming connection ends the stream (e.g. "no COPY in progress"
    # when the server shuts down): the bridge reconnects from a new slot.
    return DatabaseUnavailable(str(translate_error(error)))


class ReplicationStream:
    """The replication connection of one server process (never pooled, never shared)."""

    def __init__(self, raw: Any, slot: str) -> None:
        self._raw = raw
        self._cursor = raw.cursor()
        self.slot = slot
        self.backend_pid: int = raw.get_backend_pid()
        self._decoder = PgOutputDecoder()
        self._open: CommittedChanges | None = None
        self._committed: list[CommittedChanges] = []
        # Something may be there to read: set by the socket's reader callback, and at the
        # start (libpq may hold what arrived while the stream was being started).
        self._readable = True
        self._wakeup = Wakeup()
        self._watching = False

    @classmethod
    async def open(
        cls, dsn: str, *, timeout: float, publication: str = PUBLICATION
    ) -> ReplicationStream:
        """Connect, create a temporary slot, and start streaming from it."""
        try:
            raw = psycopg2.connect(
                dsn,
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                async_=True,
                application_name=REPLICATION_NAME,
                **_KEEPALIVES,
            )
        except psycopg2.Error as error:
            raise DatabaseUnavailable(
                f"cannot connect to {mask_dsn(dsn) or 'the libpq default database'}: "
                f"{translate_error(error)}"
            ) from error
        slot = f"zapjobs_sse_{os.getpid()}_{secrets.token_hex(4)}"
        try:
            async with asyncio.timeout(timeout):
                await _poll(raw)
            stream = cls(raw, slot)
            async with asyncio.timeout(max(timeout, SLOT_TIMEOUT)):
                stream._cursor.execute(
                    f"CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT"
                )
                await _poll(raw)
                stream._cursor.fetchall()
            async with asyncio.timeout(timeout):
                stream._cursor.start_replication(
                    slot_name=slot,
                    decode=False,
                    options={"proto_version": "1", "publication_names": publication},
                )
                await _poll(raw)
        except BaseException as error:
            raw.close()
            if isinstance(error, TimeoutError | psycopg2.Error | OSError):
                # Whatever it is (slots all in use, a privilege revoked), the bridge
                # retries with backoff and says why.
                raise _lost(error) from error
            raise
        stream._watch()
        return stream

    def _watch(self) -> None:
        asyncio.get_running_loop().add_reader(self._raw.fileno(), self._on_readable)
        self._watching = True

    def _on_readable(self) -> None:
        self._readable = True
        self._wakeup.wake(True)

    async def _readable_within(self, timeout: float) -> bool:
        """Wait until there may be something to read; False after `timeout` seconds."""
        return self._readable or await self._wakeup.wait(timeout)

    def _read(self) -> None:
        """Every message that has arrived, decoded; whole transactions are kept."""
        self._readable = False
        last_end: int | None = None
        read_message, decode = self._cursor.read_message, self._decoder.decode
        opened = self._open
        try:
            while (message := read_message()) is not None:
                decoded = decode(message.payload)
                if isinstance(decoded, RowChange):  # the commonest first
                    if opened is not None:
                        opened.add(decoded)
                elif isinstance(decoded, Begin):
                    opened = CommittedChanges(decoded.commit_time)
                elif isinstance(decoded, Commit):
                    if opened is not None:
                        self._committed.append(opened)
                    opened = None
                    last_end = decoded.end_lsn
                elif decoded is not None and opened is not None:
                    opened.add(decoded)
            if last_end is not None:
                # Recorded for psycopg2's own feedback, sent every status interval (10 s).
                self._cursor.send_feedback(write_lsn=last_end, flush_lsn=last_end)
        except (psycopg2.Error, OSError) as error:
            raise _lost(error) from error
        finally:
            self._open = opened

    async def next_batch(self, wait: float) -> list[CommittedChanges] | None:
        """The transactions committed so far, waiting for the first (the part of one that
        has arrived is kept meanwhile); None when nothing arrived for `wait` seconds."""
        if self._readable:
            self._read()
        while not self._committed:
            if not await self._readable_within(wait):
                return None
            self._read()
        batch, self._committed = self._committed, []
        return batch

    async def check(self, timeout: float) -> None:
        """Prove the server still answers: ask for a reply, wait for it (DatabaseUnavailable
        otherwise). What arrives meanwhile is kept for next_batch."""
        try:
            self._cursor.send_feedback(reply=True, force=True)
        except (psycopg2.Error, OSError) as error:
            raise _lost(error) from error
        self._readable = False
        if not await self._readable_within(timeout):
            raise DatabaseUnavailable("the replication connection did not answer")
        self._read()

    async def close(self) -> None:
        """Close the connection; PostgreSQL drops the temporary slot with it."""
        self._wakeup.cancel()
        if self._watching:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._raw.fileno())
            self._watching = False
        with contextlib.suppress(psycopg2.Error, OSError):
            self._raw.close()


_HOW = "see docs/WAL_FEED.md"


def _refusals(found: Mapping[str, Any], user: str) -> list[str]:
    """What the database lacks for --feed wal, each with how to set it."""
    missing = []
    if found["wal_level"] != "logical":
        missing.append(
            f"wal_level is {found['wal_level']}, --feed wal needs logical: "
            "ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (Amazon RDS and "
            "Aurora: rds.logical_replication = 1 in the parameter group; Cloud SQL: the flag "
            "cloudsql.logical_decoding = on; Azure: the server parameter wal_level = "
            f"LOGICAL; {_HOW})"
        )
    if not found["can_replicate"]:
        missing.append(
            f"the role {user} may not replicate: ALTER ROLE {user} WITH REPLICATION "
            f"(Amazon RDS and Aurora: GRANT rds_replication TO {user}; {_HOW})"
        )
    if found["slots_used"] >= found["max_replication_slots"]:
        missing.append(
            f"no free replication slot (max_replication_slots = "
            f"{found['max_replication_slots']}, {found['slots_used']} in use): each server "
            "process needs one; raise max_replication_slots and restart PostgreSQL"
        )
    if found["senders_used"] >= found["max_wal_senders"]:
        missing.append(
            f"no free WAL sender (max_wal_senders = {found['max_wal_senders']}, "
            f"{found['senders_used']} in use): each server process needs one; raise "
            "max_wal_senders and restart PostgreSQL"
        )
    if not found["publication"]:
        missing.append(
            f"the publication {PUBLICATION} is missing: run zapjobs-sse migrate as the owner "
            f"of the zapjobs tables, or CREATE PUBLICATION {PUBLICATION} FOR TABLE "
            "zapjobs.definitions, zapjobs.runs, zapjobs.logs, zapjobs.heartbeats, "
            "zapjobs.dead_letter"
        )
    return missing


async def check_wal_feed(dsn: str, *, timeout: float = 10.0) -> None:
    """Refuse (FeedUnavailable, one line) a database that cannot feed --feed wal."""
    connection = await connect(dsn, timeout=timeout)
    try:
        rows = await connection.execute(
            queries["wal_feed_requirements"], {"publication": PUBLICATION}, timeout=timeout
        )
    finally:
        await connection.close()
    found = rows[0]
    missing = _refusals(found, found["user"])
    if missing:
        raise FeedUnavailable(f"--feed wal: {'; '.join(missing)}")
