"""The reference executor: jobs are async Python functions whose runs live in the
zapjobs.* tables (docs/EXECUTOR.md). It never loads the server.

The public names below load on first use, so that the command line can register the
executor's commands (executor.commands) without loading the executor itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import (
        Job,
        JobContext,
        JobDefinition,
        JobFunction,
        JobRegistry,
        LogLevel,
        UnknownJobType,
        enqueue,
        known_job_types,
        load_registry,
    )

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".registry", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
