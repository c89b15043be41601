"""The Python executor's API: jobs, their definitions, the job context, and enqueue.

A job is an async function registered under a job type id::

    registry = JobRegistry()

    @registry.job("send-email", display_name="Send email", max_retries=3, timeout_seconds=60)
    async def send_email(ctx: JobContext, data: Any) -> Any:
        await ctx.log("info", f"sending to {data['to']}")
        await ctx.progress(1, 1)
        return {"sent": True}

`zapjobs-sse worker --jobs mymodule:registry` runs them (see worker.py); `enqueue()` and
`zapjobs-sse enqueue` add runs. The dashboard server never imports this module.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from ..db import Database
from .journal import RunJournal
from .sql import SQL

__all__ = [
    "Job",
    "JobContext",
    "JobDefinition",
    "JobFunction",
    "JobRegistry",
    "LogLevel",
    "UnknownJobType",
    "enqueue",
    "known_job_types",
    "load_registry",
]

# Longer messages are cut (and say so): a log line travels to every viewer of the run.
MAX_LOG_MESSAGE = 65536
_CATEGORY_LENGTH = 100  # logs.category is VARCHAR(100)


class LogLevel(IntEnum):
    """Log levels as ZapJobs stores them."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, level: LogLevel | int | str) -> LogLevel:
        """A level from its enum, number or name (any case; 'warn' is WARNING)."""
        if isinstance(level, str):
            name = level.strip().upper()
            name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
            try:
                return cls[name]
            except KeyError:
                raise ValueError(f"unknown log level {level!r}") from None
        return cls(level)


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """What zapjobs.definitions holds about a job type (upserted when a worker starts)."""

    job_type_id: str
    display_name: str
    queue: str = "default"
    max_retries: int = 3
    timeout_seconds: int = 3600
    max_concurrency: int = 1
    description: str | None = None

    def __post_init__(self) -> None:
        if not self.job_type_id or len(self.job_type_id) > 255:
            raise ValueError("job_type_id must have 1 to 255 characters")
        if not self.queue or len(self.queue) > 100:
            raise ValueError("queue must have 1 to 100 characters")
        if self.max_retries < 0:
            raise ValueError("max_retries must be at least 0")
        if self.timeout_seconds < 1:
            raise ValueError("timeout_seconds must be at least 1")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")


class JobContext:
    """What a running job sees: its run, and where its log lines and progress go."""

    def __init__(
        self,
        *,
        run_id: str,
        job_type: str,
        attempt: int,
        worker_id: str,
        journal: RunJournal,
    ) -> None:
        self.run_id = run_id
        self.job_type = job_type
        self.attempt = attempt
        self.worker_id = worker_id
        self._journal = journal

    async def log(
        self,
        level: LogLevel | int | str,
        message: str,
        category: str | None = None,
        *,
        exception: BaseException | None = None,
    ) -> None:
        """Add a line to the run's log (written in batches; waits only if far behind)."""
        text = _storable(str(message))
        if len(text) > MAX_LOG_MESSAGE:
            text = text[:MAX_LOG_MESSAGE] + f" … [truncated: {len(text)} characters in all]"
        await self._journal.add_line(
            int(LogLevel.parse(level)),
            text,
            _storable(category)[:_CATEGORY_LENGTH] if category else None,
            _storable("".join(traceback.format_exception(exception))) if exception else None,
        )

    async def progress(self, done: int, total: int, message: str | None = None) -> None:
        """Report progress; the run row is updated at most a few times a second."""
        self._journal.set_progress(int(done), int(total), _storable(message) if message else None)


JobFunction = Callable[[JobContext, Any], Awaitable[Any]]
F = TypeVar("F", bound=JobFunction)


@dataclass(frozen=True, slots=True)
class Job:
    definition: JobDefinition
    function: JobFunction


class JobRegistry:
    """The jobs one program offers, by job type id."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def job(
        self,
        job_type_id: str,
        *,
        display_name: str | None = None,
        queue: str = "default",
        max_retries: int = 3,
        timeout_seconds: int = 3600,
        max_concurrency: int = 1,
        description: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register an async function `(ctx, input) -> output` as a job type."""

        def register(function: F) -> F:
            self.add(
                JobDefinition(
                    job_type_id,
                    display_name or job_type_id,
                    queue,
                    max_retries,
                    timeout_seconds,
                    max_concurrency,
                    description or (function.__doc__ or "").strip() or None,
                ),
                function,
            )
            return function

        return register

    def add(self, definition: JobDefinition, function: JobFunction) -> None:
        if definition.job_type_id in self._jobs:
            raise ValueError(f"job type {definition.job_type_id!r} is registered twice")
        self._jobs[definition.job_type_id] = Job(definition, function)

    def get(self, job_type_id: str) -> Job | None:
        return self._jobs.get(job_type_id)

    def __contains__(self, job_type_id: object) -> bool:
        return job_type_id in self._jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def job_types(self) -> list[str]:
        return sorted(self._jobs)

    @property
    def queues(self) -> list[str]:
        return sorted({job.definition.queue for job in self})

    async def register(self, database: Database) -> None:
        """Upsert every job's definition into zapjobs.definitions."""
        definitions = [job.definition for job in self]
        if not definitions:
            return
        await database.execute(
            SQL["upsert_definitions"],
            {
                "job_type_ids": [d.job_type_id for d in definitions],
                "display_names": [d.display_name[:255] for d in definitions],
                "descriptions": [d.description for d in definitions],
                "queues": [d.queue for d in definitions],
                "max_retries": [d.max_retries for d in definitions],
                "timeouts": [d.timeout_seconds for d in definitions],
                "concurrency": [d.max_concurrency for d in definitions],
            },
        )


def load_registry(spec: str) -> JobRegistry:
    """The registry named by 'package.module:attribute'; ValueError says what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--jobs {spec!r} is not of the form module:registry")
    if "" not in sys.path:
        # Like `python -m`: job modules of the current directory can be found.
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--jobs: cannot import {module_name!r}: {error}") from None
    registry = getattr(module, attribute, None)
    if not isinstance(registry, JobRegistry):
        raise ValueError(f"--jobs: {spec!r} is not a JobRegistry")
    return registry


class UnknownJobType(LookupError):
    """enqueue() was given a job type that has no definition."""

    def __init__(self, job_type: str, known: list[str]) -> None:
        self.job_type = job_type
        self.known = known
        listed = ", ".join(known) if known else "none (start a worker to register its jobs)"
        super().__init__(f"unknown job type {job_type!r}; known job types: {listed}")


async def known_job_types(database: Database) -> list[str]:
    return [row["job_type_id"] for row in await database.execute(SQL["known_job_types"])]


async def enqueue(
    database: Database,
    job_type: str,
    input: Any = None,
    *,
    queue: str | None = None,
    run_id: str | None = None,
    triggered_by: str = "python",
) -> str:
    """Add a Pending run of a defined job type; return its id.

    `input` is stored as JSON (None stores nothing); `queue` defaults to the job's;
    `run_id` lets the caller choose the id (a UUID) beforehand.
    """
    input_json = None if input is None else json.dumps(input)
    rows = await database.execute(
        SQL["enqueue_run"],
        {
            "id": run_id or str(uuid.uuid4()),
            "job_type": job_type,
            "queue": queue,
            "input_json": input_json,
            "triggered_by": triggered_by,
        },
    )
    if not rows:
        raise UnknownJobType(job_type, await known_job_types(database))
    return str(rows[0]["id"])


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return text.replace("\x00", "\ufffd")
