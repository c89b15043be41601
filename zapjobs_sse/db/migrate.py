"""Applies migrations/NNN_name.sql in order, once each, safely from several processes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import structlog

from ..assets import MIGRATIONS_DIR
from . import Connection, DatabaseError, connect
from .database import queries
from .replication import check_wal_feed

__all__ = ["Migration", "apply_migrations", "load_migrations", "prepare_database"]

log = structlog.get_logger("zapjobs_sse.db.migrate")

NOTIFY_TRIGGERS = 9  # the triggers of migrations/002 (db/sql/triggers.sql)

# pg_try_advisory_lock key shared by every zapjobs-sse process ("zapjobs-sse" in ASCII, folded).
LOCK_KEY = 0x7A6A_5353
NO_TRANSACTION_MARK = "-- zapjobs-sse: no-transaction"
_FILE_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")

_VERSION_TABLE = """
CREATE SCHEMA IF NOT EXISTS zapjobs;
CREATE TABLE IF NOT EXISTS zapjobs.sse_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
"""

# A CREATE INDEX CONCURRENTLY that failed leaves an invalid index that IF NOT EXISTS
# would then skip: drop ours so that the migration builds them again.
_INVALID_SSE_INDEXES = """
SELECT c.relname AS name FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'zapjobs' AND c.relname LIKE 'sse\\_%' AND NOT i.indisvalid
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def transactional(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION_MARK)

    def statements(self) -> list[str]:
        """The statements of a no-transaction migration, one by one (no functions inside)."""
        without_comments = re.sub(r"--[^\n]*", "", self.sql)
        return [part.strip() for part in without_comments.split(";") if part.strip()]


def load_migrations() -> list[Migration]:
    migrations = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name {path.name!r} is not NNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text("utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version number")
    return migrations


async def _lock(connection: Connection) -> None:
    # Polling with the try- variant: a session blocked inside pg_advisory_lock() would hold
    # a snapshot that CREATE INDEX CONCURRENTLY in the other session waits for.
    while True:
        rows = await connection.execute(
            "SELECT pg_try_advisory_lock(%(key)s) AS ok", {"key": LOCK_KEY}
        )
        if rows[0]["ok"]:
            return
        await asyncio.sleep(0.2)


async def _apply(connection: Connection, migration: Migration) -> None:
    record = "INSERT INTO zapjobs.sse_migrations (version, name) VALUES (%(version)s, %(name)s)"
    params = {"version": migration.version, "name": migration.name}
    if migration.transactional:
        await connection.execute("BEGIN")
        try:
            await connection.execute(migration.sql)
            await connection.execute(record, params)
            await connection.execute("COMMIT")
        except BaseException:
            if not connection.closed:
                await connection.execute("ROLLBACK")
            raise
        return
    for row in await connection.execute(_INVALID_SSE_INDEXES):
        await connection.execute(f'DROP INDEX CONCURRENTLY IF EXISTS zapjobs."{row["name"]}"')
    for statement in migration.statements():
        await connection.execute(statement)
    await connection.execute(record, params)


async def _set_notify_triggers(connection: Connection, wanted: bool) -> None:
    """Put the notification triggers back where they are missing, or remove ours."""
    rows = await connection.execute(queries["notify_triggers_present"])
    present = rows[0]["present"]
    # Each script is one query string: PostgreSQL runs it as one transaction.
    if wanted and present < NOTIFY_TRIGGERS:
        await connection.execute(queries["install_notify_triggers"])
        log.info("notify_triggers_installed")
    elif not wanted and present:
        await connection.execute(queries["drop_notify_triggers"])
        log.info("notify_triggers_removed")


async def apply_migrations(dsn: str, *, notify_triggers: bool | None = True) -> list[Migration]:
    """Apply the pending migrations; return those applied (none when up to date).

    notify_triggers: True puts the notification triggers back where they are missing
    (the notify feed needs them), False removes them (a database fed by the WAL: they
    would only cost its writers), None leaves them as they are."""
    migrations = load_migrations()
    connection = await connect(dsn)
    applied: list[Migration] = []
    try:
        await _lock(connection)
        try:
            await connection.execute(_VERSION_TABLE)
            done = {
                row["version"]
                for row in await connection.execute("SELECT version FROM zapjobs.sse_migrations")
            }
            for migration in migrations:
                if migration.version in done:
                    continue
                try:
                    await _apply(connection, migration)
                except DatabaseError as error:
                    raise DatabaseError(
                        f"migration {migration.version:03d}_{migration.name} failed: {error}"
                    ) from error
                log.info("migration_applied", version=migration.version, name=migration.name)
                applied.append(migration)
            if notify_triggers is not None:
                await _set_notify_triggers(connection, notify_triggers)
        finally:
            if not connection.closed:
                await connection.execute("SELECT pg_advisory_unlock(%(key)s)", {"key": LOCK_KEY})
    finally:
        await connection.close()
    return applied


async def prepare_database(dsn: str, *, feed: str) -> None:
    """What `serve` and the demo do first: migrate for the feed, and check it can run.

    notify: the notification triggers are put back where missing. wal: they are left as
    they are (a replica on the notify feed may use them), and the database is checked
    for what the WAL feed needs (FeedUnavailable names what is missing)."""
    await apply_migrations(dsn, notify_triggers=True if feed == "notify" else None)
    if feed == "wal":
        await check_wal_feed(dsn)
