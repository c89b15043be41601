"""The Python executor on a real PostgreSQL: what users and the dashboard see of its runs."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer, repo_root
from tests.support import SSEEvent, Writer, sse_connect
from zapjobs_sse.cli import main
from zapjobs_sse.db import Database, Row
from zapjobs_sse.executor import JobContext, JobRegistry, UnknownJobType, enqueue
from zapjobs_sse.executor.worker import Worker, WorkerOptions

STALE_AFTER = 1.5

FAST = WorkerOptions(
    concurrency=4,
    claim_interval=0.05,
    heartbeat_interval=0.3,
    stale_after=STALE_AFTER,
    cancel_check_interval=0.1,
    flush_interval=0.05,
    progress_interval=0.1,
    retry_delay=0.05,
    shutdown_timeout=5.0,
)

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, AWAITING_RETRY = 0, 2, 3, 4, 5, 6


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"worker_stale_after": STALE_AFTER}


@pytest.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = await Database.open(database_dsn, size=2)
    yield db
    await db.close()


@asynccontextmanager
async def working(
    dsn: str, registry: JobRegistry, options: WorkerOptions = FAST
) -> AsyncIterator[Worker]:
    worker = Worker(dsn, registry, options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        async with asyncio.timeout(20):
            await task


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "a condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run_row(database: Database, run_id: str) -> Row:
    row = await database.fetch_one("run_by_id", {"id": run_id})
    assert row is not None
    return row


async def finished(database: Database, run_id: str, timeout: float = 15.0) -> Row:
    async def done() -> Row | None:
        row = await run_row(database, run_id)
        return row if row["status"] in (COMPLETED, FAILED, CANCELLED) else None

    result: Row = await eventually(done, timeout, f"run {run_id} to finish")
    return result


def statuses(events: list[SSEEvent], run_id: str) -> list[str]:
    """The run's successive statuses as its subscriber saw them (repeats collapsed)."""
    seen: list[str] = []
    for event in events:
        if event.name == "RunDetailUpdated" and event.json()["id"] == run_id:
            status = event.json()["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
    return seen


async def test_run_subscriber_sees_pending_running_completed_with_progress_and_logs(
    server: RunningServer, http: aiohttp.ClientSession, database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()

    # The server coalesces the changes it reads together: steps far enough apart that
    # each state is seen even on a busy machine.
    @registry.job("steps", display_name="Steps")
    async def steps(ctx: JobContext, data: Any) -> Any:
        await asyncio.sleep(0.6)
        await ctx.progress(1, 2, "half way")
        await ctx.log("info", "first step done", "steps")
        await asyncio.sleep(0.6)
        await ctx.log("warning", "second step was slow")
        await ctx.progress(2, 2, "all done")
        await asyncio.sleep(0.6)
        return {"answer": data["question"] * 2}

    await registry.register(database)
    run_id = str(uuid.uuid4())
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=stats")) as client:
        await client.wait_named("StatsUpdated")
        assert await enqueue(database, "steps", {"question": 21}, run_id=run_id) == run_id
        await client.wait_for(lambda es: statuses(es, run_id) == ["Pending"], what="Pending")
        async with working(database_dsn, registry):
            events = await client.wait_for(
                lambda es: "Completed" in statuses(es, run_id), timeout=15, what="Completed"
            )
        await client.wait_named("LogAdded", 2)
        events = client.events

    seen = [(e.name, _status(e)) for e in events]
    assert statuses(events, run_id) == ["Pending", "Running", "Completed"], seen
    details = [e.json() for e in events if e.name == "RunDetailUpdated"]
    first_running = next(i for i, e in enumerate(events) if _status(e) == "Running")
    completed = next(i for i, e in enumerate(events) if _status(e) == "Completed")
    between = events[first_running:completed]
    progress = [e.json()["progress"] for e in between if e.name == "RunDetailUpdated"]
    assert set(progress) & {1, 2}, seen
    lines = [e.json() for e in between if e.name == "LogAdded"]
    assert [line["message"] for line in lines] == ["first step done", "second step was slow"]
    assert [line["level"] for line in lines] == ["Info", "Warning"]
    final = details[-1]
    assert final["outputJson"] == '{"answer": 42}'
    assert final["progress"] == 2 and final["total"] == 2
    assert final["durationMs"] >= 1800
    assert final["workerId"] and final["startedAt"] and final["completedAt"]


def _status(event: SSEEvent) -> str | None:
    return str(event.json()["status"]) if event.name == "RunDetailUpdated" else None


async def test_failing_job_is_retried_then_moved_to_dead_letter(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()
    attempts: list[int] = []

    @registry.job("always-fails", max_retries=2)
    async def always_fails(ctx: JobContext, data: Any) -> Any:
        attempts.append(ctx.attempt)
        raise ValueError(f"bad record in attempt {ctx.attempt}")

    await registry.register(database)
    run_id = await enqueue(database, "always-fails", {"id": 7})
    async with working(database_dsn, registry):
        row = await finished(database, run_id)

    assert attempts == [1, 2, 3]
    assert row["status"] == FAILED
    assert row["attempt_number"] == 3
    assert row["error_type"] == "ValueError"
    assert row["error_message"] == "bad record in attempt 3"
    assert "always_fails" in row["stack_trace"]
    dead = await writer.execute(
        "SELECT job_type_id, attempt_count, error_message, input_json, status"
        " FROM zapjobs.dead_letter WHERE original_run_id = %s",
        (run_id,),
    )
    assert dead == [("always-fails", 3, "bad record in attempt 3", '{"id": 7}', 0)]
    errors = await writer.execute(
        "SELECT message FROM zapjobs.logs WHERE run_id = %s AND level = 4 ORDER BY timestamp, id",
        (run_id,),
    )
    assert [m for (m,) in errors] == [
        f"Attempt {n} failed: bad record in attempt {n}" for n in (1, 2, 3)
    ]


async def test_flaky_job_waits_for_its_retry_and_then_completes(
    database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()
    seen: list[tuple[int, float]] = []

    @registry.job("flaky", max_retries=3)
    async def flaky(ctx: JobContext, data: Any) -> Any:
        seen.append((ctx.attempt, time.monotonic()))
        if ctx.attempt == 1:
            raise ConnectionError("upstream down")
        return "ok"

    await registry.register(database)
    run_id = await enqueue(database, "flaky")
    options = dataclasses.replace(FAST, retry_delay=0.5)
    async with working(database_dsn, registry, options):
        row = await finished(database, run_id)

    assert row["status"] == COMPLETED and row["attempt_number"] == 2
    assert row["output_json"] == '"ok"' and row["error_message"] is None
    assert seen[1][1] - seen[0][1] >= 0.35  # the backoff was respected (jitter: 0.8x)


async def test_job_past_its_timeout_fails_and_the_worker_carries_on(
    database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()

    @registry.job("hangs", max_retries=0, timeout_seconds=1)
    async def hangs(ctx: JobContext, data: Any) -> Any:
        await asyncio.sleep(60)

    @registry.job("quick")
    async def quick(ctx: JobContext, data: Any) -> Any:
        return 1

    await registry.register(database)
    hung = await enqueue(database, "hangs")
    async with working(database_dsn, registry):
        row = await finished(database, hung)
        after = await finished(database, await enqueue(database, "quick"))

    assert row["status"] == FAILED
    assert row["error_type"] == "TimeoutError"
    assert row["error_message"] == "timed out after 1 s"
    assert 1000 <= row["duration_ms"] < 5000
    assert after["status"] == COMPLETED


async def test_running_job_set_to_cancelled_is_stopped(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()
    stopped = asyncio.Event()

    @registry.job("long")
    async def long(ctx: JobContext, data: Any) -> Any:
        try:
            for step in range(600):
                await ctx.progress(step, 600)
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            stopped.set()
            raise

    @registry.job("quick")
    async def quick(ctx: JobContext, data: Any) -> Any:
        return 1

    await registry.register(database)
    run_id = await enqueue(database, "long")
    async with working(database_dsn, registry) as worker:

        async def running() -> bool:
            return bool((await run_row(database, run_id))["status"] == RUNNING)

        await eventually(running, what="the run to start")
        await writer.execute("UPDATE zapjobs.runs SET status = 5 WHERE id = %s", (run_id,))
        async with asyncio.timeout(5):
            await stopped.wait()
        await eventually(lambda: _not_running(worker), what="the worker to let go")
        row = await run_row(database, run_id)
        next_run = await finished(database, await enqueue(database, "quick"))

    assert row["status"] == CANCELLED
    assert row["completed_at"] is not None and row["duration_ms"] is not None
    assert next_run["status"] == COMPLETED


async def _not_running(worker: Worker) -> bool:
    return not worker.running


async def test_four_workers_execute_500_runs_exactly_once(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()
    executed: list[str] = []

    @registry.job("noop", max_concurrency=32)
    async def noop(ctx: JobContext, data: Any) -> Any:
        executed.append(ctx.run_id)

    await registry.register(database)
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, created_at)"
        " SELECT gen_random_uuid(), 'noop', now() AT TIME ZONE 'utc'"
        " FROM generate_series(1, 500)"
    )

    async def all_completed() -> bool:
        rows = await writer.execute("SELECT count(*) FROM zapjobs.runs WHERE status = 3")
        return bool(rows[0][0] == 500)

    async with (
        working(database_dsn, registry),
        working(database_dsn, registry),
        working(database_dsn, registry),
        working(database_dsn, registry),
    ):
        await eventually(all_completed, timeout=60, what="500 completed runs")

    counts = collections.Counter(executed)
    assert len(counts) == 500
    assert set(counts.values()) == {1}
    per_worker = await writer.execute(
        "SELECT worker_id, count(*) FROM zapjobs.runs GROUP BY worker_id"
    )
    assert sum(n for _, n in per_worker) == 500
    assert len(per_worker) >= 2


async def test_killed_worker_turns_stale_and_its_run_is_recovered(
    server: RunningServer, http: aiohttp.ClientSession, database_dsn: str, database: Database
) -> None:
    from tests.integration.executor_jobs import registry

    await registry.register(database)
    run_id = await enqueue(database, "stuck-first-time")
    command = [
        sys.executable,
        "-m",
        "zapjobs_sse",
        "worker",
        "--dsn",
        database_dsn,
        "--jobs",
        "tests.integration.executor_jobs:registry",
        "--heartbeat-interval",
        "0.3",
        "--claim-interval",
        "0.1",
        "--worker-id",
        "doomed-worker",
        "--log-format",
        "json",
    ]
    async with sse_connect(http, server.path("events?topics=workers")) as client:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=repo_root(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:

            async def taken() -> bool:
                row = await run_row(database, run_id)
                return bool(row["status"] == RUNNING and row["worker_id"] == "doomed-worker")

            await eventually(taken, timeout=30, what="the subprocess worker to take the run")
            await client.wait_for(lambda es: _worker_state(es, "doomed-worker") == "active")
            process.send_signal(signal.SIGKILL)
        finally:
            if process.returncode is None:
                process.kill()
            async with asyncio.timeout(10):
                await process.wait()
        await client.wait_for(
            lambda es: _worker_state(es, "doomed-worker") == "stale",
            timeout=STALE_AFTER + 5,
            what="the killed worker to turn stale",
        )
        async with working(database_dsn, registry) as rescuer:
            row = await finished(database, run_id)

    assert row["status"] == COMPLETED
    assert row["attempt_number"] == 2
    assert row["worker_id"] == rescuer.worker_id
    assert row["output_json"] == '{"attempt": 2}'


def _worker_state(events: list[SSEEvent], worker_id: str) -> str | None:
    states = [
        e.json()["state"]
        for e in events
        if e.name == "WorkerUpdated" and e.json()["workerId"] == worker_id
    ]
    return states[-1] if states else None


async def test_misbehaving_jobs_are_recorded_and_the_worker_carries_on(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()

    @registry.job("huge-log", max_retries=0)
    async def huge_log(ctx: JobContext, data: Any) -> Any:
        await ctx.log("info", "x" * 1_048_576, "c" * 300)
        await ctx.log("debug", "nul \x00 inside")
        return "logged"

    @registry.job("odd-result", max_retries=0)
    async def odd_result(ctx: JobContext, data: Any) -> Any:
        return {"not json": object()}

    @registry.job("raises", max_retries=0)
    async def raises(ctx: JobContext, data: Any) -> Any:
        raise KeyError("missing")

    await registry.register(database)
    huge = await enqueue(database, "huge-log")
    odd = await enqueue(database, "odd-result")
    raised = await enqueue(database, "raises")
    async with working(database_dsn, registry):
        huge_row = await finished(database, huge)
        odd_row = await finished(database, odd)
        raised_row = await finished(database, raised)
        later = await finished(database, await enqueue(database, "huge-log"))

    assert huge_row["status"] == COMPLETED and later["status"] == COMPLETED
    lines = await writer.execute(
        "SELECT length(message), message LIKE '%%truncated: 1048576 characters in all]',"
        " length(category) FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id",
        (huge,),
    )
    assert lines[0][1] is True and 65536 < lines[0][0] < 70000 and lines[0][2] == 100
    assert len(lines) == 2
    assert odd_row["status"] == FAILED and odd_row["error_type"] == "TypeError"
    assert "not JSON" in odd_row["error_message"]
    assert raised_row["status"] == FAILED and raised_row["error_type"] == "KeyError"


async def test_log_lines_keep_their_order_across_batches(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()

    @registry.job("chatty")
    async def chatty(ctx: JobContext, data: Any) -> Any:
        for number in range(1500):
            await ctx.log("trace", f"line {number}")
            if number % 400 == 0:
                await asyncio.sleep(0.1)

    await registry.register(database)
    run_id = await enqueue(database, "chatty")
    async with working(database_dsn, registry):
        assert (await finished(database, run_id))["status"] == COMPLETED

    rows = await writer.execute(
        "SELECT message, timestamp FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id",
        (run_id,),
    )
    assert [message for message, _ in rows] == [f"line {n}" for n in range(1500)]
    stamps = [stamp for _, stamp in rows]
    assert all(a < b for a, b in itertools.pairwise(stamps))


async def test_shutdown_puts_unfinished_runs_back_to_pending_and_marks_the_heartbeat(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()

    @registry.job("slow")
    async def slow(ctx: JobContext, data: Any) -> Any:
        await asyncio.sleep(60)

    await registry.register(database)
    run_id = await enqueue(database, "slow")
    options = dataclasses.replace(FAST, shutdown_timeout=0.5)
    async with working(database_dsn, registry, options) as worker:

        async def running() -> bool:
            return bool((await run_row(database, run_id))["status"] == RUNNING)

        await eventually(running, what="the run to start")
        started = time.monotonic()
    assert time.monotonic() - started < 8

    row = await run_row(database, run_id)
    assert row["status"] == PENDING and row["worker_id"] is None
    assert row["attempt_number"] == 1
    beat = await writer.execute(
        "SELECT is_shutting_down, current_run_id FROM zapjobs.heartbeats WHERE worker_id = %s",
        (worker.worker_id,),
    )
    assert beat == [(True, None)]


@asynccontextmanager
async def worker_command(
    dsn: str, worker_id: str, *flags: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`zapjobs-sse worker` with the jobs of executor_jobs, in a subprocess that is killed if
    it still runs when the block ends."""
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "zapjobs_sse", "worker", "--dsn", dsn],
        *["--jobs", "tests.integration.executor_jobs:registry", "--claim-interval", "0.1"],
        *["--worker-id", worker_id, "--log-format", "json", *flags],
        cwd=repo_root(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_worker_command_finishes_running_jobs_on_sigterm(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    from tests.integration.executor_jobs import registry

    await registry.register(database)
    run_id = await enqueue(database, "takes-a-second")
    async with worker_command(database_dsn, "polite-worker") as process:

        async def running() -> bool:
            return bool((await run_row(database, run_id))["status"] == RUNNING)

        await eventually(running, timeout=30, what="the worker to take the run")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await process.wait()

    assert code == 0
    row = await run_row(database, run_id)
    assert row["status"] == COMPLETED and row["output_json"] == '"finished"'
    beat = await writer.execute(
        "SELECT is_shutting_down, jobs_processed FROM zapjobs.heartbeats WHERE worker_id = %s",
        ("polite-worker",),
    )
    assert beat == [(True, 1)]


async def test_worker_command_stops_running_jobs_at_once_on_a_second_sigterm(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    from tests.integration.executor_jobs import registry

    await registry.register(database)
    run_id = await enqueue(database, "stuck-first-time")  # hangs for 300 s
    flags = ("--shutdown-timeout", "120")
    async with worker_command(database_dsn, "hasty-worker", *flags) as process:

        async def running() -> bool:
            return bool((await run_row(database, run_id))["status"] == RUNNING)

        async def draining() -> bool:
            beat = await writer.execute(
                "SELECT is_shutting_down FROM zapjobs.heartbeats WHERE worker_id = %s",
                ("hasty-worker",),
            )
            return beat == [(True,)]

        await eventually(running, timeout=30, what="the worker to take the run")
        process.send_signal(signal.SIGTERM)
        await eventually(draining, what="the worker to wait for its running job")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):  # far less than the 120 s the job was given
            code = await process.wait()

    assert code == 0
    row = await run_row(database, run_id)
    assert row["status"] == PENDING and row["worker_id"] is None
    assert row["attempt_number"] == 1


async def test_workers_silent_for_a_day_are_forgotten(
    database_dsn: str, database: Database, writer: Writer
) -> None:
    registry = JobRegistry()

    @registry.job("quick")
    async def quick(ctx: JobContext, data: Any) -> Any:
        return 1

    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (worker_id, hostname, process_id, timestamp)"
        " VALUES ('gone-long-ago', 'old-host', 1,"
        " (now() AT TIME ZONE 'utc') - interval '25 hours'),"
        " ('gone-recently', 'old-host', 2, (now() AT TIME ZONE 'utc') - interval '1 hour')"
    )
    async with working(database_dsn, registry) as worker:

        async def forgotten() -> bool:
            rows = await writer.execute("SELECT worker_id FROM zapjobs.heartbeats")
            return {"gone-recently", worker.worker_id} == {w for (w,) in rows}

        await eventually(forgotten, what="the day-old worker to be removed")


async def test_enqueue_unknown_job_type_lists_the_known_ones(database: Database) -> None:
    registry = JobRegistry()

    @registry.job("known-a")
    async def known_a(ctx: JobContext, data: Any) -> Any:
        return None

    await registry.register(database)
    with pytest.raises(UnknownJobType) as raised:
        await enqueue(database, "nope")
    assert raised.value.known == ["known-a"]
    assert "known-a" in str(raised.value)


def test_enqueue_command_adds_a_pending_run(
    database_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--dsn", database_dsn, "--jobs", "tests.integration.executor_jobs:registry"]
    assert main(["enqueue", "stuck-first-time", "--input", '{"n": 1}', *args]) == 0
    run_id = capsys.readouterr().out.strip()
    uuid.UUID(run_id)

    async def check() -> Row:
        db = await Database.open(database_dsn, size=1)
        try:
            return await run_row(db, run_id)
        finally:
            await db.close()

    row = asyncio.run(check())
    assert row["status"] == PENDING and row["input_json"] == '{"n": 1}'
    assert row["triggered_by"] == "cli"


def test_enqueue_command_rejects_unknown_job_type_and_bad_json(
    database_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--dsn", database_dsn, "--jobs", "tests.integration.executor_jobs:registry"]
    assert main(["enqueue", "no-such-job", *args]) == 1
    error = capsys.readouterr().err
    assert "unknown job type 'no-such-job'" in error
    assert "stuck-first-time" in error
    assert "Traceback" not in error

    assert main(["enqueue", "stuck-first-time", "--input", "{nope", *args]) != 0
    error = capsys.readouterr().err
    assert "--input is not valid JSON" in error
    assert "Traceback" not in error


def test_worker_command_without_jobs_says_what_is_missing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zapjobs_sse", "worker", "--dsn", "postgresql://127.0.0.1:1/x"],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ZAPJOBS_JOBS": ""},
    )
    assert result.returncode == 2
    assert "--jobs" in result.stderr and "Traceback" not in result.stderr
