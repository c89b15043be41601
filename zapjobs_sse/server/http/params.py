"""Query-string parsing shared by the stream, the API and the pages: 400 on bad input."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiohttp import web
from multidict import MultiMapping

from ...db import RunPageKey
from ...db.cursors import CursorError, LogCursor
from ..live.broker import TOPICS, StreamFilter
from ..live.wire import DEAD_LETTER_STATUSES, RUN_STATUSES, enum_value
from .errors import bad_request, not_found
from .insights import RANGES, InsightRange

__all__ = [
    "DEFAULT_PAGE",
    "DEFAULT_TOPICS",
    "MAX_LOG_PAGE",
    "MAX_PAGE",
    "MAX_PARAMETER_LENGTH",
    "DeadLetterFilter",
    "RunFilter",
    "RunSearch",
    "StreamParams",
    "form_fields",
    "header_last_event_id",
    "one",
    "parse_cursor",
    "parse_dead_letter_filter",
    "parse_enum",
    "parse_job_type",
    "parse_job_type_id",
    "parse_limit",
    "parse_log_after",
    "parse_page_key",
    "parse_range",
    "parse_run_filter",
    "parse_run_id_prefix",
    "parse_text_filter",
    "parse_uuid",
    "run_id_digits",
]

MAX_PARAMETER_LENGTH = 255
MAX_SEARCH_LENGTH = 200
DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_LOG_PAGE = 5000
# The short ids the tables show are a run id's first 8 hex digits.
MIN_ID_PREFIX = 8
_HEX_DIGITS: Final = frozenset("0123456789abcdef")

_NO_NAMES: Final[frozenset[str]] = frozenset()
# The global part of a stream that names no topics: the audit trail and the queues only
# when asked for (the pages that show them ask).
DEFAULT_TOPICS: Final = TOPICS - {"activity", "queues"}


def one(query: MultiMapping[str], name: str, max_length: int = MAX_PARAMETER_LENGTH) -> str | None:
    """The single value of a parameter (None if absent); 400 when repeated or too long."""
    values = query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        bad_request(f"{name}: give it at most once")
    value = values[0]
    if len(value) > max_length:
        bad_request(f"{name}: longer than {max_length} characters")
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


def run_id_digits(text: str) -> str | None:
    """A run id or the start of one as lower-case hex digits without hyphens (1 to 32): a
    whole UUID (in any form uuid.UUID reads), or hex digits (hyphens ignored, as in a piece
    of the canonical text); None when the text is neither."""
    with contextlib.suppress(ValueError):
        if len(text) <= 64:
            return uuid.UUID(text).hex
    digits = text.replace("-", "").lower()
    if 1 <= len(digits) <= 32 and _HEX_DIGITS.issuperset(digits):
        return digits
    return None


def parse_run_id_prefix(name: str, text: str) -> str:
    """A run id or its first 8 hex digits or more, as run_id_digits gives them; 400
    otherwise."""
    digits = run_id_digits(text)
    if digits is None or len(digits) < MIN_ID_PREFIX:
        bad_request(
            f"{name}: {text[:64]!r} is neither a run id nor its first "
            f"{MIN_ID_PREFIX} hex digits or more"
        )
    return digits


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


def parse_enum(query: MultiMapping[str], parameter: str, names: tuple[str, ...]) -> int | None:
    """An enum filter (`status`, `level`) as its integer: a name (any case) or the number
    of one (0 to len(names) - 1); 400 naming the parameter otherwise, for every enum
    filter of the API and the pages alike."""
    text = one(query, parameter)
    if text is None or text == "":
        return None
    value = enum_value(names, text)
    if value is None or value >= len(names):
        bad_request(
            f"{parameter}: {text[:64]!r} is not one of {', '.join(names)}"
            f" (or their numbers, 0 to {len(names) - 1})"
        )
    return value


def parse_page_key(query: MultiMapping[str]) -> tuple[datetime, str] | None:
    """The `before` keyset cursor (`<micros>.<uuid>`, as the API hands out in `next`)."""
    text = one(query, "before")
    if text is None or text == "":
        return None
    try:
        key = LogCursor.parse(text)
    except CursorError as error:
        bad_request(f"before: {text[:64]!r} is not a page cursor ({error})")
    return key.timestamp, key.log_id


def parse_log_after(query: MultiMapping[str]) -> tuple[str | None, LogCursor]:
    """The `after` log cursor as given (None if absent) and as a cursor (the start if absent)."""
    text = one(query, "after")
    return text, parse_cursor("after", text) if text else LogCursor.START


@dataclass(frozen=True, slots=True)
class RunSearch:
    """The runs search (`q`): its text, the run id prefix it also is (hex digits, or None),
    and how many of the newest runs it looks through (--search-window)."""

    text: str
    id_prefix: str | None
    window: int

    @property
    def ids_everywhere(self) -> bool:
        """An id prefix as long as the short ids of the tables (or a whole id) is matched
        among all runs (a range of the primary key); a shorter one within the window."""
        return self.id_prefix is not None and len(self.id_prefix) >= MIN_ID_PREFIX


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The filters of the run list: status, job type, page key, page size, queue and the
    search (None without `q`)."""

    status: int | None
    job_type: str | None
    before: RunPageKey | None
    limit: int
    queue: str | None = None
    search: RunSearch | None = None


def parse_text_filter(
    query: MultiMapping[str], name: str, max_length: int = MAX_PARAMETER_LENGTH
) -> str | None:
    """A text filter of a list (`job_type`, `queue`, `q`): None when absent or blank; 400
    when repeated, too long or holding NUL characters (which PostgreSQL text cannot)."""
    text = one(query, name, max_length)
    if text is None or not text.strip():
        return None
    if "\x00" in text:
        bad_request(f"{name}: must not contain NUL characters")
    return text


def parse_job_type_id(value: str) -> str:
    """A job type id from a path: 400 when it holds NUL characters; longer than ZapJobs'
    255 characters, no such job type can exist (404)."""
    if "\x00" in value:
        bad_request("id: must not contain NUL characters")
    if len(value) > 255:
        not_found("id: no job type has an id longer than 255 characters")
    return value


def parse_job_type(query: MultiMapping[str]) -> str | None:
    """The `job_type` filter of a list (None when absent or blank)."""
    return parse_text_filter(query, "job_type")


def parse_run_filter(query: MultiMapping[str], search_window: int) -> RunFilter:
    """The run list's filters; `q` (trimmed) searches the `search_window` newest runs."""
    status = parse_enum(query, "status", RUN_STATUSES)
    job_type = parse_job_type(query)
    queue = parse_text_filter(query, "queue")
    text = parse_text_filter(query, "q", MAX_SEARCH_LENGTH)
    key = parse_page_key(query)
    limit = parse_limit(query, DEFAULT_PAGE, MAX_PAGE)
    before = RunPageKey(key[0], key[1]) if key else None
    search = None
    if text is not None:
        text = text.strip()
        search = RunSearch(text, run_id_digits(text), search_window)
    return RunFilter(status, job_type, before, limit, queue, search)


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """The filters of the dead-letter list: status, page key, page size and job type (the
    filter a bulk action of the page takes too)."""

    status: int | None
    before: tuple[datetime, str] | None
    limit: int
    job_type: str | None = None


def parse_dead_letter_filter(query: MultiMapping[str]) -> DeadLetterFilter:
    status = parse_enum(query, "status", DEAD_LETTER_STATUSES)
    before = parse_page_key(query)
    limit = parse_limit(query, DEFAULT_PAGE, MAX_PAGE)
    return DeadLetterFilter(status, before, limit, parse_job_type(query))


@dataclass(frozen=True, slots=True)
class StreamParams:
    """The query of GET {base}/events (README.md, "Events": query parameters)."""

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
        topics = DEFAULT_TOPICS
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


async def form_fields(request: web.Request) -> dict[str, str]:
    """A posted form's text fields (files are ignored); a body that is no form is a 400."""
    try:
        posted = await request.post()
    except (UnicodeDecodeError, ValueError) as error:
        bad_request(f"body: not a form ({error.__class__.__name__})")
    return {key: value for key, value in posted.items() if isinstance(value, str)}


def parse_range(query: MultiMapping[str], default: str) -> InsightRange:
    """The `range` of an insights view or chart: 1h, 24h, 7d or 30d; 400 otherwise."""
    name = one(query, "range") or default
    chosen = RANGES.get(name)
    if chosen is None:
        bad_request(f"range: {name[:64]!r} is not one of {', '.join(RANGES)}")
    return chosen
