"""StatsCoalescer: one query of the stats and the queues for all viewers, however many
changes arrive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from ...db import Database, DatabaseError
from .broker import TOPIC, Broker
from .frames import dumps
from .wire import queue_wire, queues_event, stats_wire

__all__ = ["StatsCoalescer"]

log = structlog.get_logger("zapjobs_sse.server.live.stats")

AGE = "oldestPendingAgeSeconds"


class StatsCoalescer:
    """Recomputes the stats and the queues when told they are dirty, at most once per
    `interval`.

    A burst of 10,000 changes costs one query per interval, not 10,000; with
    nothing changing, both are still refreshed every `refresh` seconds because some of
    the figures move with time alone (active workers, "today", a scheduled run that
    becomes due).
    """

    def __init__(
        self,
        database: Database,
        broker: Broker,
        *,
        interval: float = 0.5,
        refresh: float = 10.0,
        exact_limit: int = 50000,
    ) -> None:
        self._database = database
        self._broker = broker
        self._interval = interval
        self._refresh = refresh
        self._exact_limit = exact_limit
        self._dirty = asyncio.Event()
        self.latest: dict[str, Any] | None = None
        self._queues: list[dict[str, Any]] | None = None
        self._queues_read_at = 0.0
        self._queues_published: dict[str, Any] | None = None
        self.refreshes = 0
        self.last_duration = 0.0

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def compute(self) -> dict[str, Any]:
        """Query the stats and the queues now and publish what changed."""
        started = time.perf_counter()
        read_at = time.monotonic()  # about when the database took its now() for the ages
        stats_row, queue_rows = await self._database.stats_and_queues(self._exact_limit)
        self._queues_read_at = read_at
        stats = stats_wire(stats_row)
        if stats != self.latest:
            self.latest = stats
            self._broker.publish("StatsUpdated", dumps(stats), (TOPIC, "stats"), snapshot=True)
        queues = self._queues = [queue_wire(row) for row in queue_rows]
        event = queues_event(queues)
        if event != self._queues_published:
            self._queues_published = event
            self._broker.publish("QueuesUpdated", dumps(event), (TOPIC, "queues"), snapshot=True)
        self.last_duration = time.perf_counter() - started
        self.refreshes += 1
        return stats

    def queues(self) -> list[dict[str, Any]] | None:
        """The latest queues, their ages counted on to now (None before the first read)."""
        if self._queues is None:
            return None
        elapsed = time.monotonic() - self._queues_read_at
        return [
            queue if queue[AGE] is None else queue | {AGE: round(queue[AGE] + elapsed, 3)}
            for queue in self._queues
        ]

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._refresh):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                await self.compute()
            except DatabaseError as error:
                log.warning("stats_refresh_failed", error=str(error))
            await asyncio.sleep(self._interval)
