"""Opening and closing a stream: resume it from the ring, or resync it, and start its logs."""

from __future__ import annotations

from ...db import Database, LogCursor
from .broker import Broker, Event, StreamFilter, Subscription
from .logs import LINE_EVENT, LogFollowing

__all__ = ["close_stream", "open_stream"]


async def open_stream(
    broker: Broker,
    following: LogFollowing,
    database: Database,
    stream_filter: StreamFilter,
    *,
    last_event_id: str | None,
    logs_after: LogCursor | None,
    identity: str,
) -> Subscription:
    """A registered stream whose first frames are queued: the replay of what it missed
    (or `resync` when that cannot be proved), then the current stats.

    A stream of run logs reads each run's lines after `logs_after`, or from where the
    run is followed, or after its last stored line (one query; DatabaseError if it fails).
    When the ring holds the events after `last_event_id` but not the runs' lines, a
    `logs_after` still makes the resume complete: the ring's other events are replayed
    and the lines read after the cursor (a page's first stream: base.html live_from).
    """
    runs = stream_filter.runs
    refusal: str | None = None
    lines_from_cursor: int | None = None  # replay the ring but for the runs' lines
    if last_event_id is not None:
        point = broker.resume_point(last_event_id)
        refusal = point if isinstance(point, str) else following.resume_refusal(runs, point)
        if isinstance(point, int) and refusal is None:
            floors = dict.fromkeys(runs, logs_after) if logs_after is not None else {}
            sub = broker.open(stream_filter, identity)
            if broker.replay(sub, point, following.replay_filter(floors) if floors else None):
                following.attach_resumed(sub, floors)
                broker.register(sub)
                return sub
            broker.unsubscribe(sub)
            refusal = "replay_window_exceeded"  # more than the stream's buffer holds
        elif isinstance(point, int) and logs_after is not None:
            lines_from_cursor = point
    starts: dict[str, LogCursor] = {}
    for run in sorted(runs):
        start = logs_after or following.cursor(run)
        starts[run] = start if start is not None else await database.log_tail(run)
    # From here to register, nothing awaits: no event can fall between.
    sub = broker.open(stream_filter, identity)
    if lines_from_cursor is not None:

        def not_a_line(event: Event) -> bool:
            return event.name != LINE_EVENT or event.audience[1] not in runs

        if broker.replay(sub, lines_from_cursor, not_a_line):
            refusal = None
    if refusal is not None:
        broker.resync(sub, refusal)
    following.attach(sub, starts)
    broker.register(sub)
    return sub


def close_stream(broker: Broker, following: LogFollowing, sub: Subscription) -> None:
    following.detach(sub)
    broker.unsubscribe(sub)
