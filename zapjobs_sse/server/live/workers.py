"""WorkerWatch: worker states from heartbeats, and the silence the database cannot report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .broker import TOPIC, Broker
from .frames import dumps
from .wire import worker_state, worker_wire

__all__ = ["WorkerWatch"]


@dataclass(slots=True)
class _Known:
    row: Mapping[str, Any]
    state: str
    stale_at: float  # monotonic time at which the last heartbeat becomes too old


class WorkerWatch:
    """Publishes WorkerUpdated for every heartbeat, and `stale` when heartbeats stop.

    The database sends nothing when nothing happens, so a timer here notices a
    worker's silence; the next heartbeat makes it `active` again.
    """

    def __init__(self, broker: Broker, stale_after: float) -> None:
        self._broker = broker
        self._stale_after = stale_after
        self._known: dict[str, _Known] = {}

    def _publish(self, row: Mapping[str, Any], state: str) -> None:
        self._broker.publish("WorkerUpdated", dumps(worker_wire(row, state)), (TOPIC, "workers"))

    def _remember(self, row: Mapping[str, Any]) -> tuple[str, bool]:
        state = worker_state(row, self._stale_after)
        stale_at = time.monotonic() + self._stale_after - float(row["age_seconds"])
        previous = self._known.get(row["worker_id"])
        self._known[row["worker_id"]] = _Known(row, state, stale_at)
        changed = previous is None or previous.row != row or previous.state != state
        return state, changed

    async def load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Start from the table's current content (at start and after a reconnect)."""
        for row in rows:
            state, changed = self._remember(row)
            if changed:
                self._publish(row, state)

    def update(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            state, _ = self._remember(row)
            self._publish(row, state)

    def gone(self, worker_ids: Iterable[str]) -> None:
        for worker_id in worker_ids:
            known = self._known.pop(worker_id, None)
            if known is not None:
                self._publish(known.row, "stopped")

    def check(self) -> None:
        """Mark the workers whose heartbeat has just become too old."""
        now = time.monotonic()
        for known in self._known.values():
            if known.state == "active" and now >= known.stale_at:
                known.state = "stale"
                self._publish(known.row, "stale")

    async def run(self) -> None:
        tick = min(1.0, self._stale_after / 4)
        while True:
            await asyncio.sleep(tick)
            self.check()
