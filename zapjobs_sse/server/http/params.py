"""Query-string parsing shared by the stream, the API and the pages: 400 on bad input."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from multidict import MultiMapping

from ...db.cursors import CursorError, LogCursor
from ..live.broker import TOPICS, StreamFilter
from .errors import bad_request

__all__ = [
    "MAX_PARAMETER_LENGTH",
    "StreamParams",
    "one",
    "parse_cursor",
    "parse_limit",
    "parse_uuid",
]

MAX_PARAMETER_LENGTH = 255

_NO_NAMES: Final[frozenset[str]] = frozenset()


def one(query: MultiMapping[str], name: str) -> str | None:
    """The single value of a parameter (None if absent); 400 when repeated or too long."""
    values = query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        bad_request(f"{name}: give it at most once")
    value = values[0]
    if len(value) > MAX_PARAMETER_LENGTH:
        bad_request(f"{name}: longer than {MAX_PARAMETER_LENGTH} characters")
    return value


def _names(values: list[str]) -> frozenset[str]:
    """The values as a frozenset; the shared empty one when there are none (each new empty
    frozenset is 216 bytes, kept as long as the stream that asked for nothing)."""
    return frozenset(values) if values else _NO_NAMES


def parse_uuid(name: str, text: str) -> str:
    try:
        if len(text) > 64:
            raise ValueError
        return str(uuid.UUID(text))
    except ValueError:
        bad_request(f"{name}: {text[:64]!r} is not a UUID")


def parse_cursor(name: str, text: str) -> LogCursor:
    try:
        return LogCursor.parse(text)
    except CursorError as error:
        bad_request(f"{name}: {text[:64]!r} is not a log cursor ({error})")


def parse_limit(query: MultiMapping[str], default: int, maximum: int) -> int:
    text = one(query, "limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        bad_request(f"limit: must be a whole number from 1 to {maximum}")
    return int(text)


@dataclass(frozen=True, slots=True)
class StreamParams:
    """The query of GET {base}/events (DESIGN section 3)."""

    filter: StreamFilter
    last_event_id: str | None
    logs_after: LogCursor | None

    @classmethod
    def parse(cls, query: MultiMapping[str], max_filters: int) -> StreamParams:
        runs = [parse_uuid("run", value) for value in query.getall("run", [])]
        job_types = query.getall("job_type", [])
        for job_type in job_types:
            if not job_type.strip():
                bad_request("job_type: must not be empty")
            if len(job_type) > MAX_PARAMETER_LENGTH:
                bad_request(f"job_type: longer than {MAX_PARAMETER_LENGTH} characters")
        if len(runs) + len(job_types) > max_filters:
            bad_request(
                f"run, job_type: {len(runs) + len(job_types)} filters, at most {max_filters}"
            )
        topics_text = one(query, "topics")
        topics = TOPICS
        if topics_text is not None:
            names = {name.strip() for name in topics_text.split(",") if name.strip()}
            unknown = sorted(names - TOPICS)
            if unknown:
                bad_request(
                    f"topics: unknown topic {unknown[0]!r} (known: {', '.join(sorted(TOPICS))})"
                )
            topics = frozenset(names)
        last_event_id = one(query, "last_event_id")
        logs_after_text = one(query, "logs_after")
        logs_after = None
        if logs_after_text is not None:
            logs_after = parse_cursor("logs_after", logs_after_text)
            if len(set(runs)) != 1:
                bad_request("logs_after: needs exactly one run parameter")
        return cls(
            StreamFilter(topics, _names(runs), _names(job_types)),
            last_event_id,
            logs_after,
        )


def header_last_event_id(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Last-Event-ID")
    if value is None:
        return None
    if len(value) > MAX_PARAMETER_LENGTH:
        bad_request(f"Last-Event-ID: longer than {MAX_PARAMETER_LENGTH} characters")
    return value
