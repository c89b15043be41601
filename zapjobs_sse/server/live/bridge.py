"""The bridge: changes in from the feed, rows read by key, events handed to the broker.

A notification only says what changed; the bridge reads what it is now (runs and
workers by id; log lines, through LogFollowing, by cursor and only for runs that
somebody streams). A change decoded from the WAL may carry the row itself, which is
then published without a read. It owns the process's one feed connection (LISTEN, or
the replication stream: live/feeds.py), checks it when it falls silent, and after any
break reconnects with backoff and jitter and tells every stream to resync.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Literal

import structlog

from ...db import Database, DatabaseError, DatabaseUnavailable, Row
from .broker import JOB_TYPE, RUN, TOPIC, Broker
from .changes import ChangeSet
from .feeds import Feed, open_feed
from .frames import LazyJson
from .logs import LogFollowing
from .rollups import RunHours
from .stats import StatsCoalescer
from .wire import run_summary_wire, run_wire
from .workers import WorkerWatch

__all__ = ["Bridge", "ChangeSet"]  # ChangeSet: re-exported from live/changes.py

log = structlog.get_logger("zapjobs_sse.server.live.bridge")


class Bridge:
    """Runs the feed loop of one process (start it as a task; cancel it to stop)."""

    def __init__(
        self,
        dsn: str,
        database: Database,
        broker: Broker,
        following: LogFollowing,
        stats: StatsCoalescer,
        workers: WorkerWatch,
        hours: RunHours,
        *,
        check_interval: float = 5.0,
        check_timeout: float = 5.0,
        max_backoff: float = 10.0,
        on_delay: Callable[[float], None] | None = None,
        queue_warning: float = 0.5,
        feed: str = "notify",
    ) -> None:
        self._dsn = dsn
        self.feed_kind = feed
        self._database = database
        self._broker = broker
        self._following = following
        self._stats = stats
        self._workers = workers
        self._hours = hours
        self._check_interval = check_interval
        self._check_timeout = check_timeout
        self._max_backoff = max_backoff
        self._on_delay = on_delay
        self._queue_warning = queue_warning
        self._queue_warned_at = -60.0
        self.queue_usage = 0.0
        self._feed: Feed | None = None
        self.listening = asyncio.Event()
        self.reconnects = 0
        # Notifications or row changes received; statements run to read what they named.
        self.notifications = 0
        self.reads = 0

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the feed connection (for operators and fault tests)."""
        return self._feed.backend_pid if self._feed else None

    @property
    def statements(self) -> int:
        """Statements run to read what changes named (runs, workers, log lines)."""
        return self.reads + self._following.reads

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                self._feed = await open_feed(self.feed_kind, self._dsn, timeout=self._check_timeout)
            except DatabaseUnavailable as error:
                attempt += 1
                delay = self._backoff(attempt)
                log.warning("bridge_connect_failed", error=str(error), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            first_connect = self.reconnects == 0 and attempt == 0
            attempt = 0
            self.listening.set()
            log.info("bridge_listening", feed=self.feed_kind, backend_pid=self.backend_pid)
            try:
                # Streams opened before the first LISTEN may have missed changes too.
                resync = not first_connect or self._broker.subscription_count > 0
                await self._after_connect(resync=resync)
                await self._listen()
            except DatabaseUnavailable as error:
                log.warning("bridge_connection_lost", error=str(error))
            except Exception:
                # A bug must not end live updates for good: log it, reconnect, resync.
                log.exception("bridge_failed")
            finally:
                self.listening.clear()
                await self._feed.close()
                self._feed = None
            self.reconnects += 1
            self._following.lost()
            self._hours.lost()
            await asyncio.sleep(self._backoff(1))

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so replicas do not reconnect in step."""
        ceiling = min(self._max_backoff, 0.25 * 2 ** min(attempt, 10))
        return random.uniform(0.05, ceiling)

    async def _after_connect(self, *, resync: bool) -> None:
        """Catch up on what happened while not listening."""
        await self._workers.load(await self._database.all_workers())
        self._stats.mark_dirty()
        if resync:
            self._broker.resync_all("database_reconnected")
            await self._following.read(self._following.runs())

    async def _listen(self) -> None:
        assert self._feed is not None
        feed = self._feed
        wanted = self._following.wanted
        # The batch task is never cancelled while it may hold changes: when a run to
        # read (LogFollowing.wanted) wakes us first, the same task is awaited again.
        batch_task: asyncio.Future[ChangeSet | None] | None = None
        # Kept from one batch to the next until `wanted` is set (not made anew each time).
        wanted_task: asyncio.Future[Literal[True]] | None = None
        last_check = time.monotonic()
        try:
            while True:
                if batch_task is None:
                    batch_task = asyncio.ensure_future(feed.next_batch(self._check_interval))
                if wanted_task is None:
                    wanted_task = asyncio.ensure_future(wanted.wait())
                await asyncio.wait((batch_task, wanted_task), return_when=asyncio.FIRST_COMPLETED)
                if wanted_task.done():
                    wanted_task = None
                changes = ChangeSet()
                if batch_task.done():
                    finished, batch_task = batch_task, None
                    batch = finished.result()
                    if batch is not None:
                        changes = batch
                    # Checked on silence, and at the same pace while busy.
                    if batch is None or time.monotonic() - last_check >= self._check_interval:
                        self._note_queue_usage(await feed.check(self._check_timeout))
                        last_check = time.monotonic()
                if changes.received or wanted.is_set():
                    self.notifications += changes.received
                    await self.apply(changes)
        finally:
            for task in (batch_task, wanted_task):
                if task is not None:
                    task.cancel()

    def _note_queue_usage(self, usage: float) -> None:
        """Warn (at most once a minute) when the NOTIFY queue fills: when it is full,
        every notifying writer's COMMIT fails."""
        self.queue_usage = usage
        now = time.monotonic()
        if usage >= self._queue_warning and now - self._queue_warned_at >= 60.0:
            self._queue_warned_at = now
            log.warning("notify_queue_filling", usage=usage, threshold=self._queue_warning)

    async def apply(self, changes: ChangeSet) -> None:
        """Read what the changes name and publish the events (one batch)."""
        if changes.undecodable:
            log.warning("bridge_undecodable_notifications", count=changes.undecodable)
        try:
            await self._following.read(changes.log_runs, carried=changes.log_lines)
            if changes.runs:
                self.reads += 1
                self._publish_runs(await self._database.runs_by_ids(sorted(changes.runs)))
            if changes.run_rows:
                self._publish_runs(list(changes.run_rows.values()))
            if changes.workers:
                self.reads += 1
                self._workers.update(await self._database.workers_by_ids(sorted(changes.workers)))
            if changes.worker_rows:
                self._workers.update(changes.worker_rows.values())
        except DatabaseUnavailable:
            raise
        except DatabaseError as error:
            # What these notifications named was not read: streams must reload it.
            log.error("bridge_read_failed", error=str(error))
            self._broker.resync_all("read_failed")
            self._hours.lost()
        except (KeyError, TypeError, ValueError) as error:
            # A row a change carried lacks what its event needs (e.g. a renamed column).
            log.error("bridge_row_unreadable", error=repr(error))
            self._broker.resync_all("read_failed")
            self._hours.lost()
        if changes.workers_gone:
            self._workers.gone(changes.workers_gone)
        if changes.stats:
            self._stats.mark_dirty()
        if self._on_delay is not None and changes.written_at:
            now = time.time()
            for written_at in changes.written_at:
                self._on_delay(now - written_at)

    def _publish_runs(self, rows: list[Row]) -> None:
        # Published whether or not anybody listens right now: the replay ring must hold
        # every change, or a client reconnecting with Last-Event-ID would miss some.
        self._hours.note(rows)
        # Encoded when a stream takes them: most runs' details have no viewer.
        broker = self._broker
        for row in rows:
            broker.publish("JobRunUpdated", LazyJson(run_summary_wire, row), (TOPIC, "runs"))
            detail = LazyJson(run_wire, row)
            broker.publish("RunDetailUpdated", detail, (RUN, str(row["id"])))
            broker.publish("JobTypeRunUpdated", detail, (JOB_TYPE, str(row["job_type_id"])))
