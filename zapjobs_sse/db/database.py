"""Connections, the query pool and the named queries of the database port (aiopg / psycopg2).

Everything above the port (bridge, stats, API, pages, migrations) calls the typed methods
here and gets plain dicts back; no package outside zapjobs_sse.db imports the driver.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiopg
import psycopg2
from aiopg.utils import ClosableQueue

from .cursors import LogCursor

__all__ = [
    "LOG_PAGE",
    "Connection",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "Row",
    "Transaction",
    "connect",
    "load_queries",
    "mask_dsn",
    "queries",
    "translate_error",
]

Row = dict[str, Any]
# Log lines read in one statement (pages, API, the bridge's catch-up).
LOG_PAGE = 1000
_NAME_LINE = re.compile(r"^-- name: (\w+) --$", re.MULTILINE)
_ASCII_PIECES = re.compile(r"[\x00-\x7f]+")

# TCP keepalives make a half-open connection fail within about a minute even when
# nothing is sent on it; ignored by libpq for Unix sockets.
_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class DatabaseError(Exception):
    """A statement failed for a reason other than the connection."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL cannot be reached, or the connection broke."""


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ***, for messages and logs."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is not None:
            netloc = parts.netloc.rsplit("@", 1)
            userinfo = netloc[0].split(":", 1)[0]
            return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))
        return dsn
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


def load_queries(package: str) -> Mapping[str, str]:
    """Every named query of the sql/*.sql files of a package (`-- name: NAME --` headers)."""
    loaded: dict[str, str] = {}
    folder = resources.files(package).joinpath("sql")
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".sql"):
            continue
        pieces = _NAME_LINE.split(entry.read_text("utf-8"))
        for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
            if name in loaded:
                raise ValueError(f"query {name!r} is defined twice")
            loaded[name] = body.strip()
    return loaded


# The server's questions (sql/queries.sql of this package).
queries: Mapping[str, str] = load_queries(__package__ or "zapjobs_sse.db")

# A refresh of the live figures: the stats' row, and the queues (by name, as json) in a
# column of it. One statement for both: the queues add no statement to a refresh.
STATS_AND_QUEUES = f"""SELECT stats.*, queues.list AS queues
FROM (
{queries["stats"]}
) AS stats, (
SELECT coalesce(json_agg(q ORDER BY q.queue), '[]') AS list FROM (
{queries["queues"]}
) AS q
) AS queues"""


def translate_error(error: BaseException) -> DatabaseError:
    """The port's own exception for a driver, socket or timeout error."""
    if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError | OSError):
        return DatabaseUnavailable(
            str(error).strip().splitlines()[0] if str(error) else repr(error)
        )
    if isinstance(error, asyncio.TimeoutError):
        return DatabaseUnavailable("timed out")
    return DatabaseError(str(error).strip())


def _rows(cursor: Any, fetched: Sequence[tuple[Any, ...]]) -> list[Row]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in fetched]


class Connection:
    """One dedicated connection (migrations, LISTEN): statements run in autocommit."""

    def __init__(self, raw: aiopg.Connection) -> None:
        self._raw = raw
        self.backend_pid: int | None = None

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)

    @property
    def notifies(self) -> ClosableQueue:
        """The notifications received on this connection (after LISTEN), as the driver queues
        them."""
        return self._raw.notifies

    async def execute(
        self, sql: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[Row]:
        """Run one statement (or a script without parameters) and return its rows, if any."""
        try:
            async with self._raw.cursor(timeout=timeout) as cursor:
                await cursor.execute(sql, params)
                if cursor.description is None:
                    return []
                return _rows(cursor, await cursor.fetchall())
        except (TimeoutError, psycopg2.Error, OSError) as error:
            raise translate_error(error) from error

    async def close(self) -> None:
        if not self._raw.closed:
            await self._raw.close()


async def connect(
    dsn: str, *, timeout: float = 10.0, application_name: str = "zapjobs-sse"
) -> Connection:
    """Open a dedicated connection; DatabaseUnavailable names the (masked) DSN on failure."""
    try:
        raw = await aiopg.connect(
            dsn,
            timeout=timeout,
            enable_hstore=False,
            enable_uuid=False,
            application_name=application_name,
            **_KEEPALIVES,
        )
    except (TimeoutError, psycopg2.Error, OSError) as error:
        raise DatabaseUnavailable(
            f"cannot connect to {mask_dsn(dsn) or 'the libpq default database'}: "
            f"{translate_error(error)}"
        ) from error
    return Connection(raw)


def _cursor_params(cursor: LogCursor) -> dict[str, Any]:
    return {"after_ts": cursor.timestamp, "after_id": cursor.log_id}


_NO_ID = "00000000-0000-0000-0000-000000000000"  # below every other uuid


def _id_range(prefix: str) -> dict[str, str]:
    """The ids that start with these hex digits (1 to 32, lower case, no hyphens) as a
    range of the primary key: uuid order is byte order, so the prefix padded with 0s and
    with fs bounds exactly the ids it starts."""
    return {"low": prefix.ljust(32, "0"), "high": prefix.ljust(32, "f")}


@dataclass(frozen=True, slots=True)
class RunPageKey:
    created_at: datetime
    run_id: str


class Transaction:
    """One transaction on one pooled connection (Database.transaction): the statements of
    one action, committed together. One method per statement of sql/actions.sql."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    async def fetch(self, name: str, params: Mapping[str, Any]) -> list[Row]:
        try:
            await self._cursor.execute(queries[name], params)
        except (TimeoutError, psycopg2.Error, OSError) as error:
            raise translate_error(error) from error
        if self._cursor.description is None:
            return []
        return _rows(self._cursor, await self._cursor.fetchall())

    async def _one(self, name: str, params: Mapping[str, Any]) -> Row | None:
        rows = await self.fetch(name, params)
        return rows[0] if rows else None

    async def claim_idempotency_key(self, key: str, hours: float) -> bool:
        """True for the first request with this key (a second one waits for its commit)."""
        return await self._one("claim_idempotency_key", {"key": key, "hours": hours}) is not None

    async def idempotency_answer(self, key: str) -> Row | None:
        return await self._one("idempotency_answer", {"key": key})

    async def store_idempotency_answer(self, key: str, http_status: int, response: str) -> None:
        await self.fetch(
            "store_idempotency_answer",
            {"key": key, "http_status": http_status, "response": response},
        )

    async def trigger_job(self, job_type: str, input_json: str | None, identity: str) -> Row | None:
        """The new run, or None when the job type has no definition."""
        params = {"job_type": job_type, "input_json": input_json, "identity": identity}
        return await self._one("trigger_job", params)

    async def cancel_run(self, run_id: str) -> Row | None:
        """The cancelled run, or None when it is not (or no longer) cancellable."""
        return await self._one("cancel_run", {"id": run_id})

    async def retry_run(self, run_id: str, identity: str) -> Row | None:
        """The new run, or None when the run is not Failed or Cancelled."""
        return await self._one("retry_run", {"id": run_id, "identity": identity})

    async def requeue_dead_letter(
        self, *, entry_id: str | None, job_type: str | None, limit: int, identity: str
    ) -> list[Row]:
        """The Pending entries requeued (one, or a batch of a filter)."""
        params = {"id": entry_id, "job_type": job_type, "limit": limit, "identity": identity}
        return await self.fetch("requeue_dead_letter", params)

    async def settle_dead_letter(
        self, *, entry_id: str | None, job_type: str | None, limit: int, status: int
    ) -> list[Row]:
        """The Pending entries given `status` (Discarded, Archived)."""
        params = {"id": entry_id, "job_type": job_type, "limit": limit, "status": status}
        return await self.fetch("settle_dead_letter", params)

    async def set_job_enabled(self, job_type: str, enabled: bool) -> Row | None:
        """The changed definition; None when it does not exist or had nothing to change."""
        return await self._one("set_job_enabled", {"job_type": job_type, "enabled": enabled})

    async def run(self, run_id: str) -> Row | None:
        return await self._one("run_by_id", {"id": run_id})

    async def definition(self, job_type: str) -> Row | None:
        return await self._one("definition_by_id", {"job_type": job_type})

    async def dead_letter_entry(self, entry_id: str) -> Row | None:
        return await self._one("dead_letter_by_id", {"id": entry_id})

    async def record_activity(self, activity: Mapping[str, Any]) -> Row:
        row = await self._one("record_activity", activity)
        assert row is not None
        return row


class Database:
    """The query pool, with one method per question the server asks."""

    def __init__(self, dsn: str, pool: aiopg.Pool) -> None:
        self.dsn = dsn
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, size: int = 5, timeout: float = 10.0) -> Database:
        try:
            pool = await aiopg.create_pool(
                dsn,
                minsize=1,
                maxsize=size,
                timeout=timeout,
                pool_recycle=300,
                enable_hstore=False,
                enable_uuid=False,
                application_name="zapjobs-sse",
                **_KEEPALIVES,
            )
        except (TimeoutError, psycopg2.Error, OSError) as error:
            raise DatabaseUnavailable(
                f"cannot connect to {mask_dsn(dsn) or 'the libpq default database'}: "
                f"{translate_error(error)}"
            ) from error
        return cls(dsn, pool)

    async def close(self, timeout: float = 2.0) -> None:
        """Close the pool; connections still busy after `timeout` seconds are cut."""
        self._pool.close()
        try:
            async with asyncio.timeout(timeout):
                await self._pool.wait_closed()
        except TimeoutError:
            self._pool.terminate()

    @asynccontextmanager
    async def _cursor(self, timeout: float | None) -> AsyncIterator[Any]:
        try:
            async with self._pool.acquire() as conn, conn.cursor(timeout=timeout) as cursor:
                yield cursor
        except (TimeoutError, psycopg2.Error, OSError) as error:
            raise translate_error(error) from error

    @asynccontextmanager
    async def transaction(self, timeout: float = 10.0) -> AsyncIterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self._cursor(timeout) as cursor:
            await cursor.execute("BEGIN")
            try:
                yield Transaction(cursor)
            except BaseException:
                if not cursor.closed and not cursor.connection.closed:
                    await cursor.execute("ROLLBACK")
                raise
            await cursor.execute("COMMIT")

    async def execute(
        self, sql: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[Row]:
        """Run one statement on a pooled connection and return its rows as dicts."""
        async with self._cursor(timeout) as cursor:
            await cursor.execute(sql, params)
            if cursor.description is None:
                return []
            return _rows(cursor, await cursor.fetchall())

    async def fetch(
        self, name: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[Row]:
        """Run the named query of sql/queries.sql and return its rows as dicts."""
        return await self.execute(queries[name], params, timeout=timeout)

    async def fetch_one(
        self, name: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Row | None:
        rows = await self.fetch(name, params, timeout=timeout)
        return rows[0] if rows else None

    # -- the questions ---------------------------------------------------------------

    async def notification_queue_usage(self, timeout: float = 2.0) -> float:
        row = await self.fetch_one("notification_queue_usage", timeout=timeout)
        return float(row["usage"]) if row else 0.0

    async def stats(self, exact_limit: int) -> Row:
        row = await self.fetch_one("stats", {"exact_limit": exact_limit})
        assert row is not None
        return row

    async def queues(self) -> list[Row]:
        return await self.fetch("queues")

    async def stats_and_queues(self, exact_limit: int) -> tuple[Row, list[Row]]:
        """The stats and the queues, as `stats` and `queues` read them, in one statement."""
        rows = await self.execute(STATS_AND_QUEUES, {"exact_limit": exact_limit})
        stats = rows[0]
        queues = stats.pop("queues")
        for queue in queues:  # json has no timestamps: the text of one, naive UTC
            since = queue["oldest_pending_since"]
            queue["oldest_pending_since"] = datetime.fromisoformat(since) if since else None
        return stats, queues

    async def runs_by_ids(self, ids: Sequence[str]) -> list[Row]:
        return await self.fetch("runs_by_ids", {"ids": list(ids)})

    async def run(self, run_id: str) -> Row | None:
        return await self.fetch_one("run_by_id", {"id": run_id})

    async def run_ids_starting_with(self, prefix: str) -> list[str]:
        """The ids of at most two runs whose id starts with these hex digits (1 to 32,
        lower case, no hyphens): none, the one, or two when the prefix is ambiguous."""
        rows = await self.fetch("run_ids_in_range", _id_range(prefix))
        return [str(row["id"]) for row in rows]

    async def list_runs(
        self,
        *,
        status: int | None,
        job_type: str | None,
        before: RunPageKey | None,
        limit: int,
        queue: str | None = None,
    ) -> list[Row]:
        return await self.fetch(
            "list_runs",
            {
                "status": status,
                "job_type": job_type,
                "queue": queue,
                "before_created": before.created_at if before else None,
                "before_id": before.run_id if before else None,
                "limit": limit,
            },
        )

    async def search_runs(
        self,
        *,
        text: str,
        id_prefix: str | None,
        ids_everywhere: bool,
        window: int,
        status: int | None,
        job_type: str | None,
        queue: str | None,
        before: RunPageKey | None,
        limit: int,
    ) -> list[Row]:
        """The runs, newest first, whose error_message, error_type or input_json holds
        `text` (any case) or whose id starts with `id_prefix`, among the `window` newest
        runs; with `ids_everywhere`, the id prefix is matched among all runs. The filters
        and the page key are those of list_runs."""
        ids = _id_range(id_prefix) if id_prefix else {"low": None, "high": None}
        start = await self.fetch_one("search_window_start", {"window": window})
        return await self.fetch(
            "search_runs",
            {
                "start_created": start["created_at"] if start else datetime.min,
                "start_id": str(start["id"]) if start else _NO_ID,
                "text": text,
                "piece": max(_ASCII_PIECES.findall(text), key=len, default=""),
                "ascii": text.isascii(),
                **ids,
                "ids_everywhere": ids_everywhere and id_prefix is not None,
                "status": status,
                "job_type": job_type,
                "queue": queue,
                "before_created": before.created_at if before else None,
                "before_id": before.run_id if before else None,
                "limit": limit,
            },
        )

    async def logs_after(
        self, run_id: str, after: LogCursor, *, limit: int, min_level: int | None = None
    ) -> list[Row]:
        """A run's log lines strictly after the cursor, in cursor order."""
        params = {"run_id": run_id, "limit": limit, "min_level": min_level}
        params.update(_cursor_params(after))
        return await self.fetch("logs_after", params)

    async def log_tail(self, run_id: str) -> LogCursor:
        """The cursor of a run's last stored line (LogCursor.START when it has none)."""
        row = await self.fetch_one("log_tail", {"run_id": run_id})
        return LogCursor(row["timestamp"], row["id"]) if row else LogCursor.START

    async def workers_by_ids(self, ids: Sequence[str]) -> list[Row]:
        return await self.fetch("workers_by_ids", {"ids": list(ids)})

    async def all_workers(self) -> list[Row]:
        return await self.fetch("all_workers")

    async def list_jobs(self) -> list[Row]:
        return await self.fetch("list_jobs")

    async def count_pending_dead_letter(self, job_type: str | None) -> int:
        row = await self.fetch_one("count_pending_dead_letter", {"job_type": job_type})
        return int(row["n"]) if row else 0

    async def list_dead_letter(
        self,
        *,
        status: int | None,
        before: tuple[datetime, str] | None,
        limit: int,
        job_type: str | None = None,
    ) -> list[Row]:
        return await self.fetch(
            "list_dead_letter",
            {
                "status": status,
                "job_type": job_type,
                "before_moved": before[0] if before else None,
                "before_id": before[1] if before else None,
                "limit": limit,
            },
        )

    async def insights_exact(
        self, job_type: str | None, since: datetime, until: datetime, width: int
    ) -> list[Row]:
        """Counts and exact duration percentiles per bucket of `width` seconds; the row
        with start None is the whole range (sql/insights.sql)."""
        return await self.fetch(
            "insights_exact",
            {"job_type": job_type, "since": since, "until": until, "width": width},
        )

    async def insights_hours(
        self,
        job_type: str | None,
        since: datetime,
        until: datetime,
        *,
        first_hour: datetime,
        cut: datetime,
        width: int,
    ) -> list[Row]:
        """Counts and duration histograms per bucket: the rollups of the whole hours in
        [first_hour, cut), the runs table for the rest of [since, until); for all job
        types (the overview chart), counts only."""
        params = {"job_type": job_type, "since": since, "until": until, "width": width}
        hours = {"first_hour": first_hour, "cut": cut, "durations": job_type is not None}
        return await self.fetch("insights_hours", params | hours)

    async def insights_top_errors(
        self, job_type: str, since: datetime, until: datetime, limit: int
    ) -> list[Row]:
        params = {"job_type": job_type, "since": since, "until": until, "limit": limit}
        return await self.fetch("insights_top_errors", params)

    async def definition(self, job_type: str) -> Row | None:
        return await self.fetch_one("definition_by_id", {"job_type": job_type})

    async def job_type_has_runs(self, job_type: str) -> bool:
        row = await self.fetch_one("job_type_has_runs", {"job_type": job_type})
        return bool(row and row["found"])

    async def recompute_run_hours(self, hours: Sequence[datetime], timeout: float = 60.0) -> None:
        """Rewrite the rollup rows of these hours from zapjobs.runs, one replica at a time."""
        async with self.transaction(timeout) as transaction:
            await transaction.fetch("lock_run_hours", {})
            await transaction.fetch("recompute_run_hours", {"hours": list(hours)})

    async def rewrite_run_hours(
        self, since: datetime, until: datetime, timeout: float = 300.0
    ) -> None:
        """Rewrite the rollup rows of every hour in [since, until) in one pass."""
        async with self.transaction(timeout) as transaction:
            await transaction.fetch("lock_run_hours", {})
            await transaction.fetch("rollup_work_mem", {})
            await transaction.fetch("rewrite_run_hours", {"since": since, "until": until})

    async def forget_run_hours(self, before: datetime) -> None:
        await self.fetch("forget_run_hours", {"before": before})

    async def record_activity(self, activity: Mapping[str, Any]) -> Row:
        """An action refused before it reached a transaction, in the audit trail."""
        row = await self.fetch_one("record_activity", activity)
        assert row is not None
        return row

    async def list_activity(self, *, before: tuple[datetime, str] | None, limit: int) -> list[Row]:
        return await self.fetch(
            "list_activity",
            {
                "before_at": before[0] if before else None,
                "before_id": before[1] if before else None,
                "limit": limit,
            },
        )

    async def forget_idempotency_keys(self, hours: float) -> None:
        await self.fetch("forget_idempotency_keys", {"hours": hours})
