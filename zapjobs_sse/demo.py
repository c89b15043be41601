"""`zapjobs-sse demo`: the demo jobs, a worker, a steady enqueuer and the live dashboard.

One command, nothing installed: an embedded PostgreSQL, the migrations, a worker running
the jobs below, runs enqueued a few times a second, the dashboard served. Ctrl-C stops
it all (a second Ctrl-C stops the running jobs at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
from typing import Any

import structlog

from .db import Database, DatabaseError
from .db.embedded import database_dsn
from .db.migrate import prepare_database
from .executor import JobContext, JobRegistry, enqueue
from .executor.worker import CANCEL_GRACE, Worker, WorkerOptions
from .server.run import serve_app
from .settings import Settings
from .signals import on_stop_signals

__all__ = ["demo_jobs", "run_demo"]

log = structlog.get_logger("zapjobs_sse.demo")

demo_jobs = JobRegistry()


class UpstreamUnavailable(Exception):
    """The (imaginary) service a demo job talks to did not answer."""


@demo_jobs.job(
    "send-welcome-email",
    display_name="Send welcome email",
    queue="email",
    max_retries=3,
    timeout_seconds=30,
    max_concurrency=3,
)
async def send_welcome_email(ctx: JobContext, data: Any) -> Any:
    """Renders and sends a welcome email (under a second)."""
    to = data.get("to", "someone@example.com") if isinstance(data, dict) else "someone@example.com"
    await ctx.log("debug", f"Rendering template 'welcome' for {to}", "templates")
    await asyncio.sleep(random.uniform(0.2, 0.6))
    await ctx.log("info", f"Sent to {to}", "smtp")
    await asyncio.sleep(random.uniform(0.1, 0.4))
    return {"to": to, "messageId": f"<{random.getrandbits(48):x}@demo>"}


@demo_jobs.job(
    "resize-images",
    display_name="Resize images",
    queue="media",
    max_retries=2,
    timeout_seconds=60,
    max_concurrency=4,
)
async def resize_images(ctx: JobContext, data: Any) -> Any:
    """Resizes a handful of images, reporting progress image by image."""
    count = int(data.get("images", 5)) if isinstance(data, dict) else 5
    for done in range(1, count + 1):
        await asyncio.sleep(random.uniform(0.1, 0.3))
        await ctx.log("trace", f"image {done}/{count}: 1920x1080 -> 640x360", "imaging")
        await ctx.progress(done, count, f"image {done} of {count}")
    return {"resized": count}


@demo_jobs.job(
    "generate-report",
    display_name="Generate sales report",
    queue="reports",
    max_retries=1,
    timeout_seconds=120,
    max_concurrency=2,
)
async def generate_report(ctx: JobContext, data: Any) -> Any:
    """A slow report in steps, with progress and log lines at every level."""
    steps = ["query orders", "join customers", "aggregate", "render charts", "write PDF"]
    await ctx.log("info", f"Report {data.get('report') if isinstance(data, dict) else '?'}")
    for number, step in enumerate(steps, start=1):
        await ctx.log("trace", f"step {number}: {step} (start)", "report")
        await asyncio.sleep(random.uniform(0.8, 1.8))
        await ctx.log("debug", f"step {number}: {step} took a while", "report")
        await ctx.progress(number, len(steps), step)
        if step == "join customers":
            await ctx.log("warning", "3 orders reference deleted customers", "report")
        if step == "aggregate" and random.random() < 0.5:
            await ctx.log("error", "Currency rate missing for 2024-02-29; used previous day")
    if random.random() < 0.2:
        await ctx.log("critical", "Report storage is 95% full", "storage")
    return {"pages": random.randint(3, 40)}


@demo_jobs.job(
    "sync-inventory",
    display_name="Sync inventory",
    queue="default",
    max_retries=3,
    timeout_seconds=30,
    max_concurrency=2,
)
async def sync_inventory(ctx: JobContext, data: Any) -> Any:
    """Talks to a flaky warehouse API: fails now and then, and is retried."""
    await ctx.log("info", f"Attempt {ctx.attempt}: fetching stock levels", "warehouse")
    await asyncio.sleep(random.uniform(0.5, 2.0))
    if random.random() < 0.35:
        raise UpstreamUnavailable("warehouse API answered 503 Service Unavailable")
    await ctx.progress(1, 1, "stock levels stored")
    return {"skus": random.randint(100, 2000)}


@demo_jobs.job(
    "rebuild-search-index",
    display_name="Rebuild search index",
    queue="default",
    max_retries=1,
    timeout_seconds=4,
    max_concurrency=1,
)
async def rebuild_search_index(ctx: JobContext, data: Any) -> Any:
    """Usually done in two seconds; sometimes hangs past its 4-second timeout."""
    await ctx.log("info", "Rebuilding the product index", "search")
    await asyncio.sleep(random.choice([1.5, 2.0, 2.5, 8.0]))
    return {"documents": random.randint(10_000, 50_000)}


@demo_jobs.job(
    "import-legacy-feed",
    display_name="Import legacy feed",
    queue="default",
    max_retries=2,
    timeout_seconds=30,
    max_concurrency=1,
)
async def import_legacy_feed(ctx: JobContext, data: Any) -> Any:
    """Always fails: after its retries it ends in the dead letter queue."""
    await ctx.log("info", "Parsing feed.xml", "import")
    await asyncio.sleep(0.5)
    raise ValueError("line 1: malformed record: expected '<feed>', found '<html>'")


# Relative frequency of each job type in the steady stream of new runs.
_MIX = {
    "send-welcome-email": 5,
    "resize-images": 4,
    "sync-inventory": 3,
    "generate-report": 1,
    "rebuild-search-index": 1,
    "import-legacy-feed": 0.3,
}


def _input(job_type: str, number: int) -> Any:
    if job_type == "send-welcome-email":
        return {"to": f"user{number}@example.com"}
    if job_type == "resize-images":
        return {"images": random.randint(3, 8)}
    if job_type == "generate-report":
        return {"report": random.choice(["daily-sales", "weekly-churn", "monthly-revenue"])}
    return {"batch": number}


async def _feed(database: Database, rate: float) -> None:
    """Enqueue one run of each demo job, then a steady stream of random ones."""
    kinds, weights = list(_MIX), list(_MIX.values())
    for number in itertools.count(1):
        job_type = kinds[number - 1] if number <= len(kinds) else random.choices(kinds, weights)[0]
        try:
            await enqueue(database, job_type, _input(job_type, number), triggered_by="demo")
        except DatabaseError as error:
            log.warning("demo_enqueue_failed", error=str(error))
        await asyncio.sleep(random.expovariate(rate) if number > len(kinds) else 0.05)


async def run_demo(
    settings: Settings,
    *,
    rate: float = 2.0,
    concurrency: int = 6,
    shutdown_timeout: float = 2.0,
    retry_delay: float = 2.0,
) -> None:
    """Run the demo until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    worker: Worker | None = None

    # Its own handler for the whole demo (wait_for_stop_signal would only cover serving):
    # a Ctrl-C during the start is honoured once the embedded server is up, so it is
    # always stopped again; a second one stops the running jobs at once.
    def on_signal() -> None:
        if stop.is_set() and worker is not None:
            worker.abort()
        stop.set()

    with on_stop_signals(on_signal):
        async with database_dsn(settings) as dsn:
            if stop.is_set():
                return
            await prepare_database(dsn, feed=settings.feed)
            database = await Database.open(dsn, size=2)
            try:
                await demo_jobs.register(database)
                async with serve_app(dataclasses.replace(settings, dsn=dsn)) as url:
                    worker = Worker(
                        dsn,
                        demo_jobs,
                        WorkerOptions(
                            concurrency=concurrency,
                            stale_after=settings.worker_stale_after,
                            heartbeat_interval=min(5.0, settings.worker_stale_after / 3),
                            shutdown_timeout=shutdown_timeout,
                            retry_delay=retry_delay,
                        ),
                    )
                    working = asyncio.create_task(worker.run())
                    feeding = asyncio.create_task(_feed(database, rate))
                    print(f"zapjobs-sse demo: dashboard at {url}  (Ctrl-C to stop)", flush=True)
                    stopping = asyncio.create_task(stop.wait())
                    await asyncio.wait(
                        {stopping, working, feeding}, return_when=asyncio.FIRST_COMPLETED
                    )
                    log.info("demo_stopping")
                    for task in (stopping, feeding):
                        task.cancel()
                    worker.stop()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(shutdown_timeout + CANCEL_GRACE + 5):
                            await asyncio.shield(working)
                    if not working.done():
                        working.cancel()
                    await asyncio.gather(working, feeding, stopping, return_exceptions=True)
                    if working.done() and not working.cancelled() and working.exception():
                        log.error("demo_worker_failed", error=str(working.exception()))
            finally:
                await database.close()
    log.info("demo_stopped")
