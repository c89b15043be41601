"""Rows to wire shapes: camelCase fields, enum names, ISO-8601 UTC timestamps with Z.

The JSON API and the SSE events use these same functions, so both always agree.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...db.cursors import LogCursor

__all__ = [
    "DEAD_LETTER_STATUSES",
    "LOG_LEVELS",
    "RUN_STATUSES",
    "TRIGGER_TYPES",
    "activity_wire",
    "camel",
    "dead_letter_wire",
    "enum_value",
    "job_wire",
    "log_wire",
    "queue_wire",
    "queues_event",
    "run_summary_wire",
    "run_wire",
    "stats_wire",
    "timestamp",
    "utc_now",
    "worker_wire",
]

RUN_STATUSES = (
    "Pending",
    "Scheduled",
    "Running",
    "Completed",
    "Failed",
    "Cancelled",
    "AwaitingRetry",
)
LOG_LEVELS = ("Trace", "Debug", "Info", "Warning", "Error", "Critical")
DEAD_LETTER_STATUSES = ("Pending", "Requeued", "Discarded", "Archived")
# ZapJobs' JobTriggerType: how a run came to be.
TRIGGER_TYPES = ("Manual", "Scheduled", "Cron", "Api", "Retry", "Continuation", "Batch")


def enum_name(names: tuple[str, ...], value: int | None) -> str | None:
    """The name of an enum value; values ZapJobs does not define show as Unknown(n)."""
    if value is None:
        return None
    return names[value] if 0 <= value < len(names) else f"Unknown({value})"


def enum_value(names: tuple[str, ...], text: str) -> int | None:
    """The integer for a name (case-insensitive) or a plain number; None if neither."""
    lowered = text.strip().lower()
    for index, name in enumerate(names):
        if name.lower() == lowered:
            return index
    if lowered.isdigit() and len(lowered) < 10:
        return int(lowered)
    return None


def utc_now() -> datetime:
    """Now, as the naive UTC timestamps of the tables."""
    return datetime.now(UTC).replace(tzinfo=None)


def timestamp(value: datetime | None) -> str | None:
    """A naive UTC timestamp as ISO-8601 with milliseconds and a trailing Z."""
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


@functools.cache  # column names: a few dozen, each converted once per event otherwise
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _columns(row: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in skip:
            continue
        out[camel(key)] = timestamp(value) if isinstance(value, datetime) else value
    return out


def run_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """The whole run, every column (RunDetailUpdated, JobTypeRunUpdated, the API)."""
    out = _columns(row)
    out["status"] = enum_name(RUN_STATUSES, row["status"])
    out["triggerType"] = enum_name(TRIGGER_TYPES, row.get("trigger_type"))
    return out


def run_summary_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """JobRunUpdated: the fields every viewer of the run list needs."""
    return {
        "id": row["id"],
        "jobTypeId": row["job_type_id"],
        "queue": row["queue"],
        "status": enum_name(RUN_STATUSES, row["status"]),
        "progress": row["progress"],
        "total": row["total"],
        "durationMs": row["duration_ms"],
        "errorMessage": row["error_message"],
        "attemptNumber": row["attempt_number"],
        "createdAt": timestamp(row["created_at"]),
        "workerId": row["worker_id"],
    }


def log_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "runId": row["run_id"],
        "level": enum_name(LOG_LEVELS, row["level"]),
        "message": row["message"],
        "category": row["category"],
        "timestamp": timestamp(row["timestamp"]),
        "cursor": str(LogCursor(row["timestamp"], row["id"])),
        "exception": row.get("exception"),
        "contextJson": row.get("context_json"),
        "durationMs": row.get("duration_ms"),
    }


def worker_state(row: Mapping[str, Any], stale_after: float) -> str:
    if row["is_shutting_down"]:
        return "stopped"
    return "stale" if row["age_seconds"] > stale_after else "active"


def worker_wire(row: Mapping[str, Any], state: str) -> dict[str, Any]:
    return {
        "workerId": row["worker_id"],
        "hostname": row["hostname"],
        "currentJobType": row["current_job_type"],
        "currentRunId": row["current_run_id"],
        "timestamp": timestamp(row["timestamp"]),
        "jobsProcessed": row["jobs_processed"],
        "jobsFailed": row["jobs_failed"],
        "processId": row["process_id"],
        "queues": list(row["queues"] or []),
        "startedAt": timestamp(row["started_at"]),
        "state": state,
    }


def job_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _columns(row)
    out["lastRunStatus"] = enum_name(RUN_STATUSES, row["last_run_status"])
    return out


def dead_letter_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _columns(row)
    out["status"] = enum_name(DEAD_LETTER_STATUSES, row["status"])
    return out


def stats_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    estimated = [
        name
        for name, flag in (
            ("totalRuns", "total_runs_estimated"),
            ("totalLogEntries", "total_log_entries_estimated"),
        )
        if row[flag]
    ]
    return {
        "totalJobs": row["total_jobs"],
        "totalRuns": row["total_runs"],
        "pendingRuns": row["pending_runs"],
        "runningRuns": row["running_runs"],
        "completedToday": row["completed_today"],
        "failedToday": row["failed_today"],
        "activeWorkers": row["active_workers"],
        "totalLogEntries": row["total_log_entries"],
        "deadLetterCount": row["dead_letter_count"],
        "estimated": estimated,
    }


def queue_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A queue as GET {base}/api/queues answers it: its Pending and Running runs and how
    long the oldest Pending run has been due (null when none is pending)."""
    age = row["oldest_pending_age_seconds"]
    return {
        "queue": row["queue"],
        "pending": row["pending"],
        "running": row["running"],
        "oldestPendingAgeSeconds": None if age is None else round(age, 3),
        "oldestPendingSince": timestamp(row["oldest_pending_since"]),
    }


def queues_event(queues: list[dict[str, Any]]) -> dict[str, Any]:
    """QueuesUpdated: the queues without their ages, which change every instant (a client
    counts them from oldestPendingSince); so the event changes only when the queues do."""
    return {
        "queues": [
            {key: value for key, value in queue.items() if key != "oldestPendingAgeSeconds"}
            for queue in queues
        ]
    }


def activity_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """An entry of the audit trail (ActionPerformed, GET /api/activity, the Activity page):
    every column in camelCase, the bulk filter as the object it was."""
    out = _columns(row, skip=("filter_json",))
    out["filter"] = json.loads(row["filter_json"]) if row.get("filter_json") else None
    return out
