"""The zapjobs-sse command: serve, migrate, the executor's worker and enqueue, and demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from .db import DatabaseError
from .db.embedded import database_dsn
from .db.migrate import apply_migrations, load_migrations
from .executor.commands import add_executor_commands, add_worker_options, option, positive
from .logconfig import configure_logging
from .settings import (
    SettingsError,
    add_arguments,
    default_data_dir,
    setting_fields,
    settings_from_args,
)

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]

SERVER_SETTINGS = None  # every setting
CONNECTION_SETTINGS = ("dsn", "data_dir", "log_format", "log_level")


def _serve(args: argparse.Namespace) -> int:
    from .server.run import run_server  # the web stack, loaded only by the commands that serve

    settings = settings_from_args(args)
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run_server(settings))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    if args.print_sql:
        for migration in load_migrations():
            print(f"-- {migration.version:03d}_{migration.name}.sql")
            print(migration.sql.rstrip() + "\n")
        return 0
    settings = settings_from_args(args)
    configure_logging(settings.log_format, settings.log_level)

    async def migrate() -> int:
        async with database_dsn(settings) as dsn:
            applied = await apply_migrations(dsn, notify_triggers=not args.no_triggers)
        names = ", ".join(f"{m.version:03d}_{m.name}" for m in applied) or "nothing to apply"
        print(f"zapjobs-sse: migrations applied: {names}")
        return 0

    return asyncio.run(migrate())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zapjobs-sse",
        description="Live (Server-Sent Events) dashboard for ZapJobs-style job schedulers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="Serve the dashboard, API and event stream.")
    add_arguments(serve, SERVER_SETTINGS)
    serve.set_defaults(func=_serve)

    migrate = commands.add_parser("migrate", help="Apply the database migrations.")
    add_arguments(migrate, CONNECTION_SETTINGS)
    migrate.add_argument(
        "--print-sql", action="store_true", help="Print the migrations' SQL instead of applying it."
    )
    migrate.add_argument(
        "--no-triggers",
        action="store_true",
        default=os.environ.get("ZAPJOBS_NO_TRIGGERS", "").lower() in ("1", "true", "yes", "on"),
        help="Install the schema and indexes without the notification triggers, and remove "
        "ours where present: for databases fed by the WAL (serve --feed wal), whose writers "
        "they would only slow down; a later migrate without it puts them back "
        "[env: ZAPJOBS_NO_TRIGGERS]",
    )
    migrate.set_defaults(func=_migrate)

    add_executor_commands(commands)
    _add_demo_command(commands)
    return parser


def _add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="Embedded PostgreSQL, demo jobs, a worker and the live dashboard in one command.",
    )
    demo.add_argument(
        "--data-dir",
        dest="data_dir",
        default=os.environ.get("ZAPJOBS_DEMO_DATA_DIR", default_data_dir("demo-pgdata")),
        help="Data directory of the demo's embedded PostgreSQL "
        f"[env: ZAPJOBS_DEMO_DATA_DIR; default: {default_data_dir('demo-pgdata')}]",
    )
    option(demo, "demo_rate", positive(float), "2", "Runs the demo enqueues per second.")
    add_worker_options(demo, concurrency="6", shutdown_timeout="2", retry_delay="2")
    names = [f.name for f in setting_fields() if f.name != "data_dir"]
    add_arguments(demo, names)
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # both wings and the web stack

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.func
    try:
        return command(args)
    except SettingsError as error:
        parser.exit(2, f"zapjobs-sse: error: {error}\n")
    except DatabaseError as error:
        print(f"zapjobs-sse: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. the port is taken
        print(f"zapjobs-sse: error: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
