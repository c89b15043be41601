"""StatsCoalescer: one stats query for all viewers, however many changes arrive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from ...db import Database, DatabaseError
from .broker import TOPIC, Broker
from .frames import dumps
from .wire import stats_wire

__all__ = ["StatsCoalescer"]

log = structlog.get_logger("zapjobs_sse.server.live.stats")


class StatsCoalescer:
    """Recomputes the stats when told they are dirty, at most once per `interval`.

    A burst of 10,000 changes costs one query per interval, not 10,000; with nothing
    changing, the stats are still refreshed every `refresh` seconds because some of
    them move with time alone (active workers, "today").
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
        self.refreshes = 0
        self.last_duration = 0.0

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def compute(self) -> dict[str, Any]:
        """Query the stats now and publish them if they changed."""
        started = time.perf_counter()
        stats = stats_wire(await self._database.stats(self._exact_limit))
        self.last_duration = time.perf_counter() - started
        self.refreshes += 1
        if stats != self.latest:
            self.latest = stats
            self._broker.publish("StatsUpdated", dumps(stats), (TOPIC, "stats"), snapshot=True)
        return stats

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
