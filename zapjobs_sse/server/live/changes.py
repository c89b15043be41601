"""ChangeSet: what one batch of a feed says changed, and the rows it already carries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...db import Row, RowChange

__all__ = ["ChangeSet"]


@dataclass(slots=True)
class ChangeSet:
    """What a batch of changes says changed (keys to read), and what it carries whole.

    The notify feed gives keys only; the WAL feed also gives the rows a change carried
    whole, which are published without a read (`run_rows`, `log_lines`, `worker_rows`).
    A key in `runs`, `log_runs` or `workers` is read by key, as after a notification."""

    runs: set[str] = field(default_factory=set)
    log_runs: set[str] = field(default_factory=set)
    workers: set[str] = field(default_factory=set)
    workers_gone: set[str] = field(default_factory=set)
    stats: bool = False
    undecodable: int = 0
    # When each change was written (epoch seconds): the start of the writing transaction
    # ("t" of a notification), or its commit (the WAL feed).
    written_at: list[float] = field(default_factory=list)
    # Runs and heartbeats carried whole; log lines by run, in commit order, as the
    # changes that carry them (decoded only where their run is followed: LogFollowing).
    run_rows: dict[str, Row] = field(default_factory=dict)
    log_lines: dict[str, list[RowChange]] = field(default_factory=dict)
    worker_rows: dict[str, Row] = field(default_factory=dict)
    # Notifications or row changes received in this batch.
    received: int = 0

    @classmethod
    def decode(cls, payloads: Sequence[str]) -> ChangeSet:
        """The changes a batch of notifications names (keys only)."""
        changes = cls(received=len(payloads))
        for payload in payloads:
            try:
                message = json.loads(payload)
                kind = message["k"]
                ids = [str(key) for key in message.get("ids", ())]
            except (ValueError, KeyError, TypeError):
                changes.undecodable += 1
                continue
            changes.stats = True
            written_at = message.get("t")
            if isinstance(written_at, int | float):
                changes.written_at.append(float(written_at))
            if kind == "run":
                changes.runs.update(ids)
            elif kind == "log":
                changes.log_runs.update(ids)
            elif kind == "worker":
                changes.workers.update(ids)
            elif kind == "worker_gone":
                changes.workers_gone.update(ids)
        return changes
