"""The bridge's two feeds of changes: notifications (LISTEN) and the write-ahead log.

Both hand the bridge the same ChangeSet batches, so that everything after the feed
(reads by key, LogFollowing, the broker) is one path:

- `NotifyFeed`: the triggers' notifications on the process's LISTEN connection; keys only.
- `WalFeed`: the row changes decoded from the process's temporary replication slot
  (pgoutput). A change that carries the whole row is published without a read; one that
  does not (TOASTed values an UPDATE left unchanged) is read by key, as a notification.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from ...db import CommittedChanges, Listener, ReplicationStream, Row, RowChange
from .changes import ChangeSet

__all__ = ["Feed", "NotifyFeed", "WalFeed", "open_feed"]

# Runs whose last published row the WAL feed remembers (digests only), to skip the
# UPDATEs that change nothing, as the notify trigger's WHEN clause does.
REMEMBERED_RUNS = 2000


class Feed(Protocol):
    """Where the bridge's changes come from (one connection, opened by `open_feed`)."""

    @property
    def backend_pid(self) -> int | None: ...

    async def next_batch(self, wait: float) -> ChangeSet | None:
        """The changes received so far, waiting up to `wait` s for the first; None on silence."""

    async def check(self, timeout: float) -> float:
        """Prove the connection answers (DatabaseUnavailable otherwise); the share of the
        NOTIFY queue in use (0 where there is none)."""

    async def close(self) -> None: ...


class NotifyFeed:
    """The triggers' notifications, on the process's LISTEN connection."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    @property
    def backend_pid(self) -> int | None:
        return self._listener.connection.backend_pid

    async def next_batch(self, wait: float) -> ChangeSet | None:
        payloads = await self._listener.next_batch(wait)
        return None if payloads is None else ChangeSet.decode(payloads)

    async def check(self, timeout: float) -> float:
        return await self._listener.check(timeout)

    async def close(self) -> None:
        await self._listener.close()


# Values a digest holds as they are (small, exact); text is held by its hash (a run's
# output or stack trace may be large), anything else by the hash of its repr.
_EXACT = frozenset({int, bool, type(None), datetime})


def _digests(row: Mapping[str, Any]) -> dict[str, object]:
    digests: dict[str, object] = {}
    for name, value in row.items():
        kind = type(value)
        if kind is str:
            digests[name] = hash(value)
        elif kind in _EXACT:
            digests[name] = value
        else:
            digests[name] = hash(repr(value))
    return digests


class WalFeed:
    """The row changes of the zapjobs tables, decoded from the write-ahead log."""

    def __init__(self, stream: ReplicationStream) -> None:
        self._stream = stream
        self._published: OrderedDict[str, dict[str, object]] = OrderedDict()

    @property
    def backend_pid(self) -> int | None:
        return self._stream.backend_pid

    @property
    def slot(self) -> str:
        return self._stream.slot

    async def next_batch(self, wait: float) -> ChangeSet | None:
        transactions = await self._stream.next_batch(wait)
        return None if transactions is None else self.changes(transactions)

    async def check(self, timeout: float) -> float:
        await self._stream.check(timeout)
        return 0.0

    async def close(self) -> None:
        await self._stream.close()

    def changes(self, transactions: list[CommittedChanges]) -> ChangeSet:
        """The ChangeSet of these transactions, in commit order."""
        changes = ChangeSet()
        for transaction in transactions:
            changes.written_at.append(transaction.commit_time.timestamp())
            if transaction.changes:
                changes.received += len(transaction.changes)
                changes.stats = True
            for change in transaction.changes:
                if not isinstance(change, RowChange) or change.schema != "zapjobs":
                    continue  # a TRUNCATE moves the stats only, as with the triggers
                table = change.table
                if table == "logs":  # the commonest first
                    self._log(changes, change)
                elif table == "runs":
                    self._run(changes, change)
                elif table == "heartbeats":
                    self._heartbeat(changes, change, transaction.commit_time)
        return changes

    def _run(self, changes: ChangeSet, change: RowChange) -> None:
        run = str(change.row["id"])
        if change.operation == "delete":
            changes.run_rows.pop(run, None)
            changes.runs.discard(run)
            self._published.pop(run, None)
            return
        digests = _digests(change.row)
        last = self._published.get(run)  # always of a complete row
        if (
            last is not None
            and not change.keys_only
            and (
                last == digests
                if change.complete
                else all(last.get(name) == d for name, d in digests.items())
            )
        ):
            # Nothing changed (the columns not sent are unchanged TOASTed values).
            return
        if change.complete:
            changes.run_rows[run] = change.row
            changes.runs.discard(run)
            self._published[run] = digests
            self._published.move_to_end(run)
            while len(self._published) > REMEMBERED_RUNS:
                self._published.popitem(last=False)
        else:
            changes.run_rows.pop(run, None)
            changes.runs.add(run)
            self._published.pop(run, None)

    def _log(self, changes: ChangeSet, change: RowChange) -> None:
        if change.operation != "insert":
            return  # only the stats move, as with the triggers
        run = str(change.value("run_id"))  # the line itself is decoded if its run is followed
        if change.complete:
            changes.log_lines.setdefault(run, []).append(change)
        else:
            changes.log_runs.add(run)

    def _heartbeat(self, changes: ChangeSet, change: RowChange, committed: datetime) -> None:
        worker = str(change.row["worker_id"])
        changes.worker_rows.pop(worker, None)
        if change.operation == "delete":
            changes.workers.discard(worker)
            changes.workers_gone.add(worker)
            return
        changes.workers_gone.discard(worker)
        if not change.complete:
            changes.workers.add(worker)
            return
        row: Row = dict(change.row)
        # Aged by the database's clock, as the read by key does: at its commit.
        written = row["timestamp"]
        age = committed.replace(tzinfo=None) - written if isinstance(written, datetime) else None
        row["age_seconds"] = max(0.0, age.total_seconds()) if age is not None else 0.0
        changes.worker_rows[worker] = row
        changes.workers.discard(worker)


async def open_feed(kind: str, dsn: str, *, timeout: float) -> Feed:
    """Open the process's feed connection: `notify` or `wal` (settings.feed)."""
    if kind == "wal":
        return WalFeed(await ReplicationStream.open(dsn, timeout=timeout))
    return NotifyFeed(await Listener.open(dsn, timeout=timeout))
