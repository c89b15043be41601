"""RunJournal: a running job's log lines and progress, written to the run in batches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from ..db import Database, DatabaseError, DatabaseUnavailable
from .sql import SQL

__all__ = ["RunJournal"]

log = structlog.get_logger("zapjobs_sse.executor.journal")


@dataclass(frozen=True, slots=True)
class _Line:
    level: int
    message: str
    category: str | None
    exception: str | None
    at: float  # time.monotonic() when the job logged it


class RunJournal:
    """Buffers one run's log lines and its latest progress; a pump task writes them.

    Lines go out every `flush_interval` seconds or as soon as `batch_size` wait, one
    INSERT per batch; progress goes out at most every `progress_interval` seconds (only
    the latest value matters). A job that logs faster than the database takes lines
    waits in log() once `max_buffered` lines are pending. The job never waits for the
    database otherwise, and is never cancelled in the middle of a statement.
    """

    def __init__(
        self,
        database: Database,
        run_id: str,
        worker_id: str,
        *,
        flush_interval: float = 0.25,
        progress_interval: float = 0.5,
        batch_size: int = 500,
        max_buffered: int = 5000,
    ) -> None:
        self._database = database
        self.run_id = run_id
        self._worker_id = worker_id
        self._flush_interval = flush_interval
        self._progress_interval = progress_interval
        self._batch_size = batch_size
        self._max_buffered = max_buffered
        self._lines: list[_Line] = []
        self._progress: tuple[int, int, str | None] | None = None
        self._progress_written_at = 0.0
        self._last_stamp: datetime | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name=f"journal-{self.run_id}")

    async def add_line(
        self, level: int, message: str, category: str | None, exception: str | None
    ) -> None:
        self._lines.append(_Line(level, message, category, exception, time.monotonic()))
        if len(self._lines) >= self._batch_size:
            self._wake.set()
        while len(self._lines) >= self._max_buffered and not self._closing:
            self._drained.clear()
            await self._drained.wait()

    def set_progress(self, done: int, total: int, message: str | None) -> None:
        self._progress = (done, total, message)

    async def _pump(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            if not self._closing:
                try:
                    await self.flush(final=False)
                except Exception:
                    log.exception("journal_flush_failed", run_id=self.run_id)

    async def close(self) -> None:
        """Stop the pump and write everything still pending."""
        self._closing = True
        self._wake.set()
        self._drained.set()
        if self._task is not None:
            await self._task
        await self.flush(final=True)

    async def flush(self, *, final: bool) -> None:
        async with self._lock:
            while self._lines:
                batch = self._lines[: self._batch_size]
                if not await self._write_lines(batch, final):
                    break
                del self._lines[: len(batch)]
                if len(self._lines) < self._max_buffered:
                    self._drained.set()
                if not final and len(self._lines) < self._batch_size:
                    break
            due = time.monotonic() - self._progress_written_at >= self._progress_interval
            if self._progress is not None and (final or due):
                progress, self._progress = self._progress, None
                self._progress_written_at = time.monotonic()
                await self._write_progress(progress)

    async def _write_lines(self, batch: list[_Line], final: bool) -> bool:
        """True when the batch is done with (written, or dropped as unwritable)."""
        now = time.monotonic()
        params: dict[str, Any] = {
            "run_id": self.run_id,
            "levels": [line.level for line in batch],
            "messages": [line.message for line in batch],
            "categories": [line.category for line in batch],
            "exceptions": [line.exception for line in batch],
            "ages_us": [max(0, int((now - line.at) * 1_000_000)) for line in batch],
            "after": self._last_stamp,
        }
        try:
            rows = await self._database.execute(SQL["insert_logs"], params)
        except DatabaseUnavailable as error:
            if final:
                log.warning(
                    "log_lines_lost", run_id=self.run_id, lines=len(batch), error=str(error)
                )
                return True
            log.warning("log_write_delayed", run_id=self.run_id, error=str(error))
            return False
        except DatabaseError as error:
            log.error("log_lines_rejected", run_id=self.run_id, lines=len(batch), error=str(error))
            return True
        if rows and rows[0]["last"] is not None:
            self._last_stamp = rows[0]["last"]
        return True

    async def _write_progress(self, progress: tuple[int, int, str | None]) -> None:
        done, total, message = progress
        try:
            await self._database.execute(
                SQL["update_progress"],
                {
                    "id": self.run_id,
                    "worker_id": self._worker_id,
                    "done": done,
                    "total": total,
                    "message": message,
                },
            )
        except DatabaseError as error:
            log.warning("progress_not_written", run_id=self.run_id, error=str(error))
