"""The LISTEN bridge: notifications in, rows read by key, events handed to the broker.

A notification only says what changed; the bridge reads what it is now (runs and
workers by id; log lines, through LogFollowing, by cursor and only for runs that
somebody streams). It owns
the process's one LISTEN connection, checks it when it falls silent, and after any
break reconnects with backoff and jitter and tells every stream to resync.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from ...db import Database, DatabaseError, DatabaseUnavailable, Listener
from .broker import JOB_TYPE, RUN, TOPIC, Broker
from .frames import dumps
from .logs import LogFollowing
from .stats import StatsCoalescer
from .wire import run_summary_wire, run_wire
from .workers import WorkerWatch

__all__ = ["Bridge", "ChangeSet"]

log = structlog.get_logger("zapjobs_sse.server.live.bridge")


@dataclass(slots=True)
class ChangeSet:
    """What a batch of notifications says changed."""

    runs: set[str] = field(default_factory=set)
    log_runs: set[str] = field(default_factory=set)
    workers: set[str] = field(default_factory=set)
    workers_gone: set[str] = field(default_factory=set)
    stats: bool = False
    undecodable: int = 0
    # "t" of each notification: when its writing transaction started (epoch seconds).
    written_at: list[float] = field(default_factory=list)

    @classmethod
    def decode(cls, payloads: Sequence[str]) -> ChangeSet:
        changes = cls()
        for payload in payloads:
            try:
                message = json.loads(payload)
                kind = message["k"]
                ids = [str(key) for key in message.get("ids", ())]
            except (ValueError, KeyError, TypeError):
                changes.undecodable += 1
                continue
            changes.stats = True
            written_at = message.get("t")
            if isinstance(written_at, int | float):
                changes.written_at.append(float(written_at))
            if kind == "run":
                changes.runs.update(ids)
            elif kind == "log":
                changes.log_runs.update(ids)
            elif kind == "worker":
                changes.workers.update(ids)
            elif kind == "worker_gone":
                changes.workers_gone.update(ids)
        return changes


class Bridge:
    """Runs the LISTEN loop of one process (start it as a task; cancel it to stop)."""

    def __init__(
        self,
        dsn: str,
        database: Database,
        broker: Broker,
        following: LogFollowing,
        stats: StatsCoalescer,
        workers: WorkerWatch,
        *,
        check_interval: float = 5.0,
        check_timeout: float = 5.0,
        max_backoff: float = 10.0,
        on_delay: Callable[[float], None] | None = None,
        queue_warning: float = 0.5,
    ) -> None:
        self._dsn = dsn
        self._database = database
        self._broker = broker
        self._following = following
        self._stats = stats
        self._workers = workers
        self._check_interval = check_interval
        self._check_timeout = check_timeout
        self._max_backoff = max_backoff
        self._on_delay = on_delay
        self._queue_warning = queue_warning
        self._queue_warned_at = -60.0
        self.queue_usage = 0.0
        self._listener: Listener | None = None
        self.listening = asyncio.Event()
        self.reconnects = 0
        self.notifications = 0

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the LISTEN connection (for operators and fault tests)."""
        return self._listener.connection.backend_pid if self._listener else None

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                self._listener = await Listener.open(self._dsn, timeout=self._check_timeout)
            except DatabaseUnavailable as error:
                attempt += 1
                delay = self._backoff(attempt)
                log.warning("bridge_connect_failed", error=str(error), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            first_connect = self.reconnects == 0 and attempt == 0
            attempt = 0
            self.listening.set()
            log.info("bridge_listening", backend_pid=self.backend_pid)
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
                await self._listener.close()
                self._listener = None
            self.reconnects += 1
            self._following.lost()
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
        assert self._listener is not None
        listener = self._listener
        wanted = self._following.wanted
        # The batch task is never cancelled while it may hold notifications: when a run
        # to read (LogFollowing.wanted) wakes us first, the same task is awaited again.
        batch_task: asyncio.Future[list[str] | None] | None = None
        last_check = time.monotonic()
        try:
            while True:
                if batch_task is None:
                    batch_task = asyncio.ensure_future(listener.next_batch(self._check_interval))
                wanted_task = asyncio.ensure_future(wanted.wait())
                try:
                    await asyncio.wait(
                        (batch_task, wanted_task), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    wanted_task.cancel()
                payloads: list[str] = []
                if batch_task.done():
                    finished, batch_task = batch_task, None
                    batch = finished.result()
                    if batch is not None:
                        payloads = batch
                    # Checked on silence, and at the same pace while busy.
                    if batch is None or time.monotonic() - last_check >= self._check_interval:
                        self._note_queue_usage(await listener.check(self._check_timeout))
                        last_check = time.monotonic()
                if payloads or wanted.is_set():
                    self.notifications += len(payloads)
                    await self.apply(ChangeSet.decode(payloads))
        finally:
            if batch_task is not None:
                batch_task.cancel()

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
            await self._following.read(changes.log_runs)
            if changes.runs:
                self._publish_runs(await self._database.runs_by_ids(sorted(changes.runs)))
            if changes.workers:
                self._workers.update(await self._database.workers_by_ids(sorted(changes.workers)))
        except DatabaseUnavailable:
            raise
        except DatabaseError as error:
            # What these notifications named was not read: streams must reload it.
            log.error("bridge_read_failed", error=str(error))
            self._broker.resync_all("read_failed")
        if changes.workers_gone:
            self._workers.gone(changes.workers_gone)
        if changes.stats:
            self._stats.mark_dirty()
        if self._on_delay is not None and changes.written_at:
            now = time.time()
            for written_at in changes.written_at:
                self._on_delay(now - written_at)

    def _publish_runs(self, rows: list[dict[str, object]]) -> None:
        # Published whether or not anybody listens right now: the replay ring must hold
        # every change, or a client reconnecting with Last-Event-ID would miss some.
        broker = self._broker
        for row in rows:
            broker.publish("JobRunUpdated", dumps(run_summary_wire(row)), (TOPIC, "runs"))
            detail = dumps(run_wire(row))
            broker.publish("RunDetailUpdated", detail, (RUN, str(row["id"])))
            broker.publish("JobTypeRunUpdated", detail, (JOB_TYPE, str(row["job_type_id"])))
