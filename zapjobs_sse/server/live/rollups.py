"""RunHours: keeps the hourly rollups of finished runs (zapjobs.sse_run_hours) in step
with zapjobs.runs, from the run changes the bridge already reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog

from ...db import Database, DatabaseError, Row
from .wire import utc_now

__all__ = ["FINISHED", "ROLLUP_DAYS", "RunHours", "hour_of"]

log = structlog.get_logger("zapjobs_sse.server.live.rollups")

# Completed, Failed, Cancelled: the statuses the insights count.
FINISHED = frozenset((3, 4, 5))
# The longest range the insights answer; the rollups keep this much history (+ 1 hour).
ROLLUP_DAYS = 30
HOUR = timedelta(hours=1)


def hour_of(stamp: datetime) -> datetime:
    return stamp.replace(minute=0, second=0, microsecond=0)


class RunHours:
    """Rebuilds the rollups of the last ROLLUP_DAYS when it starts, then recomputes the
    hours in which the bridge saw runs finish, every `interval` seconds.

    Every write recomputes whole hours from the runs table (never adds to a count), so a
    restart, a missed change or a second replica doing the same cannot count a run twice;
    after the feed was lost, the hours since the last write are recomputed. Readers take
    the last two hours from the runs table itself (`live_since`): those may still move.
    """

    def __init__(self, database: Database, *, interval: float = 10.0) -> None:
        self._database = database
        self._interval = interval
        self._dirty: set[datetime] = set()
        self._written_until: datetime | None = None
        self._recover_since: datetime | None = None
        # Bumped whenever a run of the job type (key None: of any) finishes, so that
        # cached answers know they are out of date.
        self.versions: dict[str | None, int] = {}
        self.ready = asyncio.Event()
        self.rebuilds = 0
        self.hours_written = 0
        self.writes = 0

    def version(self, job_type: str | None) -> tuple[int, int]:
        """Changes when a run of the job type finishes or the rollups are written."""
        return self.versions.get(job_type, 0), self.writes

    def note(self, rows: Iterable[Row]) -> None:
        """Runs the bridge just published: mark the hours of the finished ones."""
        for row in rows:
            completed_at = row.get("completed_at")
            if completed_at is None or row.get("status") not in FINISHED:
                continue
            self._dirty.add(hour_of(completed_at))
            job_type = row.get("job_type_id")
            self.versions[job_type] = self.versions.get(job_type, 0) + 1
            self.versions[None] = self.versions.get(None, 0) + 1

    def lost(self) -> None:
        """The feed was lost: what finished meanwhile is unknown; recompute since then."""
        since = self._written_until or utc_now() - timedelta(days=ROLLUP_DAYS)
        self._recover_since = min(since, self._recover_since or since) - HOUR
        for job_type in list(self.versions):
            self.versions[job_type] += 1

    def live_since(self, first_hour: datetime, now: datetime) -> datetime:
        """Where a reader whose range starts at `first_hour` switches from the rollups to
        the runs table: the hour before the current one (still moving), or at once while
        the rollups are being built."""
        if not self.ready.is_set():
            return first_hour
        return max(first_hour, hour_of(now) - HOUR)

    async def rebuild(self) -> None:
        """Recompute every hour of the window and forget the hours older than it."""
        started = time.monotonic()
        now = utc_now()
        oldest = hour_of(now) - timedelta(days=ROLLUP_DAYS) - HOUR
        await self._write(oldest, now)
        await self._database.forget_run_hours(oldest)
        self.rebuilds += 1
        self.ready.set()
        log.info(
            "rollups_rebuilt",
            since=oldest.isoformat(),
            seconds=round(time.monotonic() - started, 2),
        )

    async def _write(self, since: datetime, now: datetime) -> None:
        since = hour_of(since)
        await self._database.rewrite_run_hours(since, hour_of(now) + HOUR)
        self._written(int((hour_of(now) - since) / HOUR) + 1, now)

    def _written(self, hours: int, now: datetime) -> None:
        self.hours_written += hours
        self.writes += 1
        self._written_until = now

    async def flush(self) -> None:
        """Recompute the hours marked since the last flush (and after a loss, every hour
        since the last write)."""
        now = utc_now()
        if self._recover_since is not None:
            since, self._recover_since = self._recover_since, None
            self._dirty.clear()
            await self._write(since, now)
        elif self._dirty:
            hours, self._dirty = sorted(self._dirty), set()
            await self._database.recompute_run_hours(hours)
            self._written(len(hours), now)

    async def run(self) -> None:
        delay = 1.0
        while not self.ready.is_set():
            try:
                await self.rebuild()
            except DatabaseError as error:
                log.warning("rollup_rebuild_failed", error=str(error), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        while True:
            # A failed write is tried again at the next tick, never at once: the database
            # may be down for a while.
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except DatabaseError as error:
                log.warning("rollup_flush_failed", error=str(error))
                self.lost()
