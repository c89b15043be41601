"""The executor's subcommands of zapjobs-sse: worker, enqueue, demo.

Only argument parsing lives here; the executor modules are imported when a command
runs, so that `zapjobs-sse serve` never loads them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ..logconfig import configure_logging
from ..settings import SettingsError, add_arguments, settings_from_args

__all__ = ["add_executor_commands", "add_worker_options", "option", "positive"]

WORKER_SETTINGS = ("dsn", "data_dir", "log_format", "log_level", "worker_stale_after")
ENQUEUE_SETTINGS = ("dsn", "data_dir", "log_format", "log_level")


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _queues(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("names no queue")
    return names


def option(
    parser: argparse.ArgumentParser,
    name: str,
    kind: Callable[[str], Any],
    default: str | None,
    help: str,
) -> None:
    """A flag that falls back to ZAPJOBS_<NAME> (argparse converts string defaults too)."""
    variable = "ZAPJOBS_" + name.upper()
    shown = "unset" if default is None else default
    parser.add_argument(
        "--" + name.replace("_", "-"),
        dest=name,
        type=kind,
        default=os.environ.get(variable, default),
        metavar=name.upper(),
        help=f"{help} [env: {variable}; default: {shown}]",
    )


def add_worker_options(
    parser: argparse.ArgumentParser, *, concurrency: str, shutdown_timeout: str, retry_delay: str
) -> None:
    option(parser, "concurrency", positive(int), concurrency, "Runs executed at once.")
    option(
        parser,
        "shutdown_timeout",
        positive(float),
        shutdown_timeout,
        "Seconds running jobs get to finish after SIGTERM/SIGINT; then they are stopped "
        "and their runs put back to Pending.",
    )
    option(
        parser,
        "retry_delay",
        positive(float),
        retry_delay,
        "Seconds before the first retry of a failed run; doubled at each further attempt.",
    )


def add_executor_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the worker and enqueue subcommands."""
    worker = commands.add_parser(
        "worker",
        help="Run the jobs of a Python job registry.",
    )
    option(worker, "jobs", str, None, "The job registry to run, as module:attribute.")
    option(
        worker,
        "queues",
        _queues,
        None,
        "Comma-separated queues to take runs from (unset: every queue of the registry's jobs).",
    )
    add_worker_options(worker, concurrency="4", shutdown_timeout="30", retry_delay="5")
    option(
        worker,
        "heartbeat_interval",
        positive(float),
        "5",
        "Seconds between two heartbeats of the worker.",
    )
    option(
        worker,
        "claim_interval",
        positive(float),
        "0.5",
        "Seconds between two looks for new runs while the worker has free slots.",
    )
    option(worker, "worker_id", str, None, "The worker's id (unset: host-pid-random).")
    add_arguments(worker, WORKER_SETTINGS)
    worker.set_defaults(func=_worker)

    enqueue = commands.add_parser(
        "enqueue",
        help="Add a Pending run of a job type.",
    )
    enqueue.add_argument("job_type", metavar="JOB_TYPE", help="The job type id.")
    enqueue.add_argument("--input", default=None, help="The run's input, as JSON.")
    enqueue.add_argument("--queue", default=None, help="Queue (default: the job type's).")
    option(
        enqueue,
        "jobs",
        str,
        None,
        "A job registry (module:attribute) whose definitions are registered first.",
    )
    add_arguments(enqueue, ENQUEUE_SETTINGS)
    enqueue.set_defaults(func=_enqueue)


def _load_registry(spec: str | None) -> Any:
    from . import load_registry

    if not spec:
        raise SettingsError("--jobs (or ZAPJOBS_JOBS) is required: module:registry")
    try:
        return load_registry(spec)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def _worker(args: argparse.Namespace) -> int:
    from ..db.embedded import database_dsn
    from ..db.migrate import apply_migrations
    from .worker import WorkerOptions, run_worker

    settings = settings_from_args(args)
    configure_logging(settings.log_format, settings.log_level)
    registry = _load_registry(args.jobs)
    try:
        options = WorkerOptions(
            concurrency=args.concurrency,
            queues=args.queues,
            claim_interval=args.claim_interval,
            heartbeat_interval=args.heartbeat_interval,
            stale_after=settings.worker_stale_after,
            shutdown_timeout=args.shutdown_timeout,
            retry_delay=args.retry_delay,
            worker_id=args.worker_id,
        )
    except ValueError as error:
        raise SettingsError(str(error)) from None

    async def work() -> None:
        async with database_dsn(settings) as dsn:
            await apply_migrations(dsn)
            await run_worker(dsn, registry, options)

    asyncio.run(work())
    return 0


def _enqueue(args: argparse.Namespace) -> int:
    from ..db import Database
    from ..db.embedded import database_dsn
    from . import UnknownJobType, enqueue

    settings = settings_from_args(args)
    configure_logging(settings.log_format, settings.log_level)
    try:
        data = None if args.input is None else json.loads(args.input)
    except ValueError as error:
        print(f"zapjobs-sse: error: --input is not valid JSON: {error}", file=sys.stderr)
        return 2
    registry = _load_registry(args.jobs) if args.jobs else None

    async def add() -> str:
        async with database_dsn(settings) as dsn:
            database = await Database.open(dsn, size=1)
            try:
                if registry is not None:
                    await registry.register(database)
                return await enqueue(
                    database, args.job_type, data, queue=args.queue, triggered_by="cli"
                )
            finally:
                await database.close()

    try:
        run_id = asyncio.run(add())
    except UnknownJobType as error:
        print(f"zapjobs-sse: error: {error}", file=sys.stderr)
        return 1
    print(run_id)
    return 0
