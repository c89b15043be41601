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
from pathlib import Path
from typing import Any

from .logconfig import configure_logging
from .settings import SettingsError, add_arguments, setting_fields, settings_from_args

__all__ = ["add_executor_commands", "default_demo_data_dir"]

WORKER_SETTINGS = ("dsn", "data_dir", "log_format", "log_level", "worker_stale_after")
ENQUEUE_SETTINGS = ("dsn", "data_dir", "log_format", "log_level")


def default_demo_data_dir() -> str:
    """The demo's embedded PostgreSQL data, apart from `serve`'s."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "zapjobs-sse" / "demo-pgdata")


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
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


def _option(
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


def _add_worker_options(
    parser: argparse.ArgumentParser, *, concurrency: str, shutdown_timeout: str, retry_delay: str
) -> None:
    _option(parser, "concurrency", _positive(int), concurrency, "Runs executed at once.")
    _option(
        parser,
        "shutdown_timeout",
        _positive(float),
        shutdown_timeout,
        "Seconds running jobs get to finish after SIGTERM/SIGINT; then they are stopped "
        "and their runs put back to Pending.",
    )
    _option(
        parser,
        "retry_delay",
        _positive(float),
        retry_delay,
        "Seconds before the first retry of a failed run; doubled at each further attempt.",
    )


def add_executor_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the worker, enqueue and demo subcommands."""
    worker = commands.add_parser(
        "worker",
        help="Run the jobs of a Python job registry.",
    )
    _option(worker, "jobs", str, None, "The job registry to run, as module:attribute.")
    _option(
        worker,
        "queues",
        _queues,
        None,
        "Comma-separated queues to take runs from (unset: every queue of the registry's jobs).",
    )
    _add_worker_options(worker, concurrency="4", shutdown_timeout="30", retry_delay="5")
    _option(
        worker,
        "heartbeat_interval",
        _positive(float),
        "5",
        "Seconds between two heartbeats of the worker.",
    )
    _option(
        worker,
        "claim_interval",
        _positive(float),
        "0.5",
        "Seconds between two looks for new runs while the worker has free slots.",
    )
    _option(worker, "worker_id", str, None, "The worker's id (unset: host-pid-random).")
    add_arguments(worker, WORKER_SETTINGS)
    worker.set_defaults(func=_worker)

    enqueue = commands.add_parser(
        "enqueue",
        help="Add a Pending run of a job type.",
    )
    enqueue.add_argument("job_type", metavar="JOB_TYPE", help="The job type id.")
    enqueue.add_argument("--input", default=None, help="The run's input, as JSON.")
    enqueue.add_argument("--queue", default=None, help="Queue (default: the job type's).")
    _option(
        enqueue,
        "jobs",
        str,
        None,
        "A job registry (module:attribute) whose definitions are registered first.",
    )
    add_arguments(enqueue, ENQUEUE_SETTINGS)
    enqueue.set_defaults(func=_enqueue)

    demo = commands.add_parser(
        "demo",
        help="Embedded PostgreSQL, demo jobs, a worker and the live dashboard in one command.",
    )
    demo.add_argument(
        "--data-dir",
        dest="data_dir",
        default=os.environ.get("ZAPJOBS_DEMO_DATA_DIR", default_demo_data_dir()),
        help="Data directory of the demo's embedded PostgreSQL "
        f"[env: ZAPJOBS_DEMO_DATA_DIR; default: {default_demo_data_dir()}]",
    )
    _option(demo, "demo_rate", _positive(float), "2", "Runs the demo enqueues per second.")
    _add_worker_options(demo, concurrency="6", shutdown_timeout="2", retry_delay="2")
    names = [f.name for f in setting_fields() if f.name != "data_dir"]
    add_arguments(demo, names)
    demo.set_defaults(func=_demo)


def _load_registry(spec: str | None) -> Any:
    from .executor import load_registry

    if not spec:
        raise SettingsError("--jobs (or ZAPJOBS_JOBS) is required: module:registry")
    try:
        return load_registry(spec)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def _worker(args: argparse.Namespace) -> int:
    from .migrations import apply_migrations
    from .server import database_dsn
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
    from .db import Database
    from .executor import UnknownJobType, enqueue
    from .server import database_dsn

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


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    settings = settings_from_args(args)
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(
        run_demo(
            settings,
            rate=args.demo_rate,
            concurrency=args.concurrency,
            shutdown_timeout=args.shutdown_timeout,
            retry_delay=args.retry_delay,
        )
    )
    return 0
