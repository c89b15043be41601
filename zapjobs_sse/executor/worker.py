"""The worker: claims runs, executes their jobs, records the outcome, heartbeats.

    claim (FOR UPDATE SKIP LOCKED) -> Running -> job(ctx, input) -> Completed
                                                    | raised, timed out
                                                    v
                      AwaitingRetry (backoff) -> claimed again ... -> Failed + dead_letter

Beside the claim loop, two timers: the heartbeat (upsert into zapjobs.heartbeats, then
recovery of the runs of workers whose heartbeat went stale) and the watch (runs set to
Cancelled, or taken over, while this worker runs them are stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from ..db import Database, DatabaseError, DatabaseUnavailable, Row
from ..signals import on_stop_signals
from . import Job, JobContext, JobRegistry, LogLevel
from .journal import RunJournal
from .sql import SQL

__all__ = ["Worker", "WorkerOptions", "run_worker"]

log = structlog.get_logger("zapjobs_sse.executor.worker")

RUNNING, COMPLETED, FAILED, CANCELLED = 2, 3, 4, 5
# Seconds a stopped job (timeout, cancel, shutdown) gets to unwind before it is abandoned.
CANCEL_GRACE = 5.0
_ERROR_TYPE_LENGTH = 500  # runs.error_type is VARCHAR(500)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker works; every field has a flag of `zapjobs-sse worker`."""

    concurrency: int = 4
    queues: tuple[str, ...] | None = None  # None: every queue of the registry's jobs
    claim_interval: float = 0.5
    heartbeat_interval: float = 5.0
    stale_after: float = 60.0
    shutdown_timeout: float = 30.0
    retry_delay: float = 5.0
    retry_max_delay: float = 3600.0
    cancel_check_interval: float = 1.0
    flush_interval: float = 0.25
    progress_interval: float = 0.5
    worker_id: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for name in (
            "claim_interval",
            "heartbeat_interval",
            "stale_after",
            "cancel_check_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0")
        if self.heartbeat_interval * 2 > self.stale_after:
            # Otherwise live workers would take each other's runs.
            raise ValueError(
                f"the heartbeat interval ({self.heartbeat_interval:g} s) must be at most half "
                f"the stale time ({self.stale_after:g} s)"
            )


@dataclass(slots=True)
class _Active:
    """A run this worker is executing."""

    run_id: str
    job_type: str
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None  # "cancelled", "lost" or "shutdown"

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop.set()


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # "completed", "failed", "cancelled", "released", "lost"
    output_json: str | None = None
    error: BaseException | None = None
    error_message: str | None = None
    retryable: bool = True


def _error_type(error: BaseException) -> str:
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return name[:_ERROR_TYPE_LENGTH]


def _text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


class _Completions:
    """Completed runs recorded together: while one UPDATE is being written, the runs that
    finish meanwhile wait for the next one. Nothing waits when the worker is not busy."""

    def __init__(
        self, write: Callable[[list[tuple[str, str | None]]], Awaitable[list[Row]]]
    ) -> None:
        self._write = write
        self._waiting: list[tuple[str, str | None, asyncio.Future[Row | None]]] = []
        self._lock = asyncio.Lock()

    async def record(self, run_id: str, output_json: str | None) -> Row | None:
        """The run's row once Completed; None if it was no longer this worker's."""
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((run_id, output_json, future))
        async with self._lock:
            if not future.done():
                batch, self._waiting = self._waiting, []
                try:
                    rows = await self._write([(run, output) for run, output, _ in batch])
                except Exception as error:
                    for *_, waiting in batch:
                        waiting.set_exception(error)
                else:
                    written = {row["id"]: row for row in rows}
                    for run, _, waiting in batch:
                        waiting.set_result(written.get(run))
        return await future


class Worker:
    """Executes the runs of the registry's job types until stopped."""

    def __init__(
        self, dsn: str, registry: JobRegistry, options: WorkerOptions | None = None
    ) -> None:
        if not len(registry):
            raise ValueError("the registry has no jobs")
        self.dsn = dsn
        self.registry = registry
        self.options = options or WorkerOptions()
        self.worker_id = self.options.worker_id or (
            f"{socket.gethostname()[:200]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.queues = list(self.options.queues or registry.queues)
        self.jobs_processed = 0
        self.jobs_failed = 0
        self._database: Database | None = None
        self._active: dict[str, _Active] = {}
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._shutting_down = False
        self._last_runs: dict[str, tuple[datetime, int]] = {}
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._completions = _Completions(self._complete)

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running jobs get `shutdown_timeout` seconds to finish."""
        self._stop.set()
        self._wakeup.set()

    def abort(self) -> None:
        """Stop now: running jobs are stopped and their runs put back to Pending."""
        self.stop()
        self._abort.set()

    def request_stop(self) -> None:
        """First call (SIGTERM, Ctrl-C): stop; second call: abort."""
        if self._stop.is_set():
            log.warning("worker_aborting", worker_id=self.worker_id)
            self.abort()
        else:
            log.info("worker_stopping", worker_id=self.worker_id, running=len(self._active))
            self.stop()

    @property
    def running(self) -> list[str]:
        """The ids of the runs being executed."""
        return list(self._active)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until stop() (or abort()), then shut down gracefully."""
        size = min(self.options.concurrency + 3, 20)
        self._database = database = await Database.open(self.dsn, size=size)
        timers: list[asyncio.Task[None]] = []
        try:
            await self.registry.register(database)
            await self._heartbeat()
            log.info(
                "worker_started",
                worker_id=self.worker_id,
                job_types=self.registry.job_types,
                queues=self.queues,
                concurrency=self.options.concurrency,
            )
            timers = [
                asyncio.create_task(self._every(self.options.heartbeat_interval, self._beat)),
                asyncio.create_task(self._every(self.options.cancel_check_interval, self._watch)),
            ]
            await self._claim_loop()
        finally:
            self._shutting_down = True
            with contextlib.suppress(DatabaseError):
                await self._heartbeat()
            await self._drain()
            for timer in timers:
                timer.cancel()
            await asyncio.gather(*timers, return_exceptions=True)
            with contextlib.suppress(DatabaseError):
                await self._heartbeat()
            await database.close()
            log.info(
                "worker_stopped",
                worker_id=self.worker_id,
                processed=self.jobs_processed,
                failed=self.jobs_failed,
            )

    async def _claim_loop(self) -> None:
        assert self._database is not None
        pause = self.options.claim_interval
        while not self._stop.is_set():
            self._wakeup.clear()
            free = self.options.concurrency - len(self._active)
            if free > 0:
                try:
                    rows = await self._database.execute(
                        SQL["claim_runs"],
                        {
                            "worker_id": self.worker_id,
                            "job_types": self.registry.job_types,
                            "queues": self.queues,
                            "limit": free,
                        },
                    )
                    pause = self.options.claim_interval
                except DatabaseError as error:
                    log.warning("claim_failed", worker_id=self.worker_id, error=str(error))
                    rows = []
                    # Back off while the database is away, up to 5 seconds.
                    pause = min(max(pause * 2, 0.5), 5.0)
                for row in rows:
                    self._start(row)
            full = len(self._active) >= self.options.concurrency
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if full else pause):
                    await self._wakeup.wait()

    async def _drain(self) -> None:
        """Give running jobs `shutdown_timeout` seconds, then stop them (back to Pending)."""
        if self._active:
            log.info("worker_draining", worker_id=self.worker_id, running=len(self._active))
        deadline = time.monotonic() + self.options.shutdown_timeout
        while True:
            self._wakeup.clear()
            remaining = deadline - time.monotonic()
            if not self._active or self._abort.is_set() or remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
        for active in list(self._active.values()):
            active.request_stop("shutdown")
        tasks = [a.task for a in self._active.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE + 10)

    async def _every(self, interval: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
            except DatabaseError as error:
                log.warning("worker_timer_failed", worker_id=self.worker_id, error=str(error))
            await asyncio.sleep(interval)

    # -- one run -------------------------------------------------------------------------

    def _start(self, row: Row) -> None:
        job = self.registry.get(row["job_type_id"])
        assert job is not None  # claim_runs only returns runs of the registry's job types
        active = _Active(row["id"], row["job_type_id"])
        self._active[active.run_id] = active
        active.task = asyncio.create_task(self._execute(row, job, active))

    async def _execute(self, row: Row, job: Job, active: _Active) -> None:
        assert self._database is not None
        run_id = active.run_id
        journal = RunJournal(
            self._database,
            run_id,
            self.worker_id,
            flush_interval=self.options.flush_interval,
            progress_interval=self.options.progress_interval,
        )
        context = JobContext(
            run_id=run_id,
            job_type=active.job_type,
            attempt=int(row["attempt_number"]),
            worker_id=self.worker_id,
            journal=journal,
        )
        try:
            journal.start()
            outcome = await self._perform(job, context, row, active)
            await self._log_outcome(context, outcome, row)
            await journal.close()
            await self._record(row, outcome)
        except Exception:
            log.exception("run_not_recorded", run_id=run_id, worker_id=self.worker_id)
        finally:
            del self._active[run_id]
            self._wakeup.set()

    async def _perform(self, job: Job, context: JobContext, row: Row, active: _Active) -> _Outcome:
        try:
            data = json.loads(row["input_json"]) if row["input_json"] else None
        except ValueError as error:
            return _Outcome(
                "failed",
                error=error,
                retryable=False,
                error_message=f"input_json is not valid JSON: {error}",
            )
        timeout = float(row["timeout_seconds"])
        try:
            task: asyncio.Future[Any] = asyncio.ensure_future(job.function(context, data))
        except Exception as error:  # a plain function: it raised, or returned no awaitable
            return _Outcome("failed", error=error, error_message=str(error) or repr(error))
        stopped = asyncio.create_task(active.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {task, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        if task in done:
            return self._result(task)
        reason = active.stop_reason or "timeout"
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE)
        if not task.done():
            log.warning("job_ignored_cancellation", run_id=active.run_id, job_type=active.job_type)
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
        elif not task.cancelled():
            task.exception()  # retrieved: the run's outcome is the stop, not this
        if reason == "timeout":
            expired = TimeoutError(f"timed out after {timeout:g} s")
            return _Outcome("failed", error=expired, error_message=str(expired))
        return _Outcome({"cancelled": "cancelled", "lost": "lost"}.get(reason, "released"))

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()

    @staticmethod
    def _result(task: asyncio.Future[Any]) -> _Outcome:
        if task.cancelled():
            error: BaseException = asyncio.CancelledError("the job cancelled itself")
            return _Outcome("failed", error=error, error_message=str(error))
        error_raised = task.exception()
        if error_raised is not None:
            return _Outcome(
                "failed",
                error=error_raised,
                error_message=str(error_raised) or type(error_raised).__name__,
            )
        try:
            output = task.result()
            output_json = None if output is None else json.dumps(output)
        except (TypeError, ValueError) as error:
            return _Outcome(
                "failed", error=error, error_message=f"the job's result is not JSON: {error}"
            )
        return _Outcome("completed", output_json=output_json)

    async def _log_outcome(self, context: JobContext, outcome: _Outcome, row: Row) -> None:
        attempt = int(row["attempt_number"])
        if outcome.kind == "failed":
            await context.log(
                LogLevel.ERROR,
                f"Attempt {attempt} failed: {outcome.error_message}",
                "executor",
                exception=outcome.error,
            )
        elif outcome.kind == "cancelled":
            await context.log(LogLevel.WARNING, "Cancelled while running: job stopped", "executor")
        elif outcome.kind == "released":
            await context.log(
                LogLevel.WARNING, "Worker shutting down: run put back to Pending", "executor"
            )

    async def _record(self, row: Row, outcome: _Outcome) -> None:
        assert self._database is not None
        params: dict[str, Any] = {"id": row["id"], "worker_id": self.worker_id}
        attempt, max_retries = int(row["attempt_number"]), int(row["max_retries"])
        if outcome.kind == "completed":
            name, status = "complete_runs", COMPLETED
        elif outcome.kind == "failed":
            assert outcome.error is not None
            params.update(
                error_message=_text(outcome.error_message or ""),
                error_type=_error_type(outcome.error),
                stack_trace=_text("".join(traceback.format_exception(outcome.error))),
            )
            if outcome.retryable and attempt <= max_retries:
                name, status = "schedule_retry", FAILED
                params["delay"] = self._retry_delay(attempt)
            else:
                name, status = "fail_run", FAILED
            log.info(
                "run_attempt_failed",
                run_id=row["id"],
                job_type=row["job_type_id"],
                attempt=attempt,
                error_type=params["error_type"],
                retry_in=round(params["delay"], 1) if "delay" in params else None,
            )
        elif outcome.kind == "cancelled":
            name, status = "finish_cancelled_run", CANCELLED
        elif outcome.kind == "released":
            name, status = "release_runs", 0
            params = {"ids": [row["id"]], "worker_id": self.worker_id}
        else:
            log.warning("run_taken_over", run_id=row["id"], worker_id=self.worker_id)
            return
        if outcome.kind == "completed":
            done = await self._completions.record(row["id"], outcome.output_json)
            rows = [done] if done is not None else []
        else:
            rows = await self._with_retries(name, params)
        if outcome.kind in ("completed", "failed"):
            self.jobs_processed += 1
            if outcome.kind == "failed":
                self.jobs_failed += 1
            if rows:
                self._last_runs[row["job_type_id"]] = (rows[0]["completed_at"], status)
            else:
                log.warning("run_taken_over", run_id=row["id"], worker_id=self.worker_id)
        log.debug("run_recorded", run_id=row["id"], outcome=name)

    async def _complete(self, runs: list[tuple[str, str | None]]) -> list[Row]:
        return await self._with_retries(
            "complete_runs",
            {
                "ids": [run_id for run_id, _ in runs],
                "outputs": [output for _, output in runs],
                "worker_id": self.worker_id,
            },
        )

    async def _with_retries(self, name: str, params: dict[str, Any]) -> list[Row]:
        """A statement that must not be lost to a short database outage."""
        assert self._database is not None
        delay = 0.5
        for _ in range(6):
            try:
                return await self._database.execute(SQL[name], params)
            except DatabaseUnavailable as error:
                log.warning("record_retrying", statement=name, error=str(error))
                await asyncio.sleep(delay)
                delay *= 2
        return await self._database.execute(SQL[name], params)

    def _retry_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: retry_delay, 2x, 4x ... up to retry_max_delay."""
        base = min(self.options.retry_delay * 2.0 ** (attempt - 1), self.options.retry_max_delay)
        return float(base * random.uniform(0.8, 1.2))

    # -- timers --------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        assert self._database is not None
        current = next(reversed(self._active.values()), None) if self._active else None
        await self._database.execute(
            SQL["upsert_heartbeat"],
            {
                "worker_id": self.worker_id,
                "hostname": socket.gethostname()[:255],
                "process_id": os.getpid(),
                "current_job_type": current.job_type if current else None,
                "current_run_id": current.run_id if current else None,
                "queues": self.queues,
                "jobs_processed": self.jobs_processed,
                "jobs_failed": self.jobs_failed,
                "is_shutting_down": self._shutting_down,
            },
        )

    async def _beat(self) -> None:
        assert self._database is not None
        await self._heartbeat()
        if self._last_runs:
            last_runs, self._last_runs = self._last_runs, {}
            await self._database.execute(
                SQL["record_last_runs"],
                {
                    "job_type_ids": list(last_runs),
                    "ats": [at for at, _ in last_runs.values()],
                    "statuses": [status for _, status in last_runs.values()],
                },
            )
        for row in await self._database.execute(
            SQL["recover_stale_runs"], {"stale_after": self.options.stale_after}
        ):
            log.warning("run_recovered", run_id=row["id"], outcome=row["outcome"])
        for row in await self._database.execute(SQL["forget_old_workers"]):
            log.info("worker_forgotten", worker_id=row["worker_id"])

    async def _watch(self) -> None:
        assert self._database is not None
        if not self._active:
            return
        owners = {
            row["id"]: row
            for row in await self._database.execute(SQL["run_owners"], {"ids": list(self._active)})
        }
        for run_id, active in list(self._active.items()):
            row = owners.get(run_id)
            if row is not None and row["status"] == RUNNING and row["worker_id"] == self.worker_id:
                continue
            reason = "cancelled" if row is not None and row["status"] == CANCELLED else "lost"
            if active.stop_reason is None:
                log.info("run_stopping", run_id=run_id, reason=reason)
            active.request_stop(reason)


async def run_worker(dsn: str, registry: JobRegistry, options: WorkerOptions) -> None:
    """Run a worker until SIGINT or SIGTERM (a second one stops the running jobs at once)."""
    worker = Worker(dsn, registry, options)
    with on_stop_signals(worker.request_stop):
        await worker.run()
