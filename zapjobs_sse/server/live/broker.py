"""In-process fan-out: subscriptions, filters, per-client buffers and the replay ring.

Each event is encoded to bytes once (frames.py) and the same bytes are appended to
the buffer of every subscription that wants it; an event published with its data still
to make (a function) is encoded when a stream first takes it, so that events nobody
receives (a run nobody watches) cost no encoding. A subscription's buffer is bounded:
a client that stops reading is disconnected when it overflows, and comes back with
Last-Event-ID (replayed from the ring when possible, `resync` otherwise).

Every frame a stream receives has its own id, increasing: events of the ring carry
their sequence number, and frames meant for one stream alone (its resync, the current
stats on connect, a log catch-up) take the next number without entering the ring.
What follows the run logs lives in logs.py; the broker knows no event by name.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import takewhile
from typing import Final, Protocol

import structlog

from ...wakeup import Wakeup
from .frames import dumps, event_frame

__all__ = [
    "TOPICS",
    "Audience",
    "Broker",
    "Data",
    "Event",
    "Sink",
    "StreamFilter",
    "Subscription",
]

log = structlog.get_logger("zapjobs_sse.server.live.broker")

TOPICS: Final = frozenset({"stats", "runs", "workers", "activity", "queues"})

# Audience kinds: who an event is for.
ALL: Final = "all"
TOPIC: Final = "topic"
RUN: Final = "run"
JOB_TYPE: Final = "job"

Audience = tuple[str, str]

# Pause after a flush pass, relative to its length (see Broker._flush).
FLUSH_GAP: Final = 0.5


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """What one stream asked for (README, "Events": topics, run=, job_type=)."""

    topics: frozenset[str] = TOPICS
    runs: frozenset[str] = frozenset()
    job_types: frozenset[str] = frozenset()

    def accepts(self, audience: Audience) -> bool:
        kind, key = audience
        if kind == TOPIC:
            return key in self.topics
        if kind == RUN:
            return key in self.runs
        if kind == JOB_TYPE:
            return key in self.job_types
        return True


# An event's JSON, or the function that makes it when a stream first takes the event.
Data = str | Callable[[], str]


class Event:
    """A published event, as the ring keeps it for replay."""

    __slots__ = ("_data", "_frame", "_id", "audience", "key", "name", "seq")

    def __init__(self, seq: int, event_id: str, name: str, data: Data, audience: Audience) -> None:
        self.seq = seq
        self.name = name
        self.audience = audience
        # The publisher's position of the event in its own sequence (a log line's cursor),
        # for the publisher's replay checks; the broker never reads it.
        self.key: object = None
        self._id = event_id
        self._data = data
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The event's frame, encoded on first use."""
        frame = self._frame
        if frame is None:
            data = self._data
            try:
                frame = event_frame(self._id, self.name, data if isinstance(data, str) else data())
            except (KeyError, TypeError, ValueError) as error:
                # A row its event cannot be made of (e.g. a renamed column): the streams
                # that take it reload instead, as after a failed read.
                log.error("event_unencodable", name=self.name, error=repr(error))
                frame = event_frame(self._id, "resync", dumps({"reason": "read_failed"}))
            self._frame, self._data = frame, ""  # the row it was made of is let go
        return frame


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The current state of a topic (the stats, the queues): what a stream gets on connect."""

    seq: int
    name: str
    data: str


class Sink(Protocol):
    """A stream's socket, written to directly by the broker's flush when it is idle."""

    def ready(self) -> bool:
        """True when the socket has nothing in flight, so a write cannot reorder or pile up."""
        ...

    def write(self, data: bytes) -> None: ...


class Subscription:
    """One connected stream: its filter and its bounded buffer of unsent frames."""

    __slots__ = (
        "_abort",
        "_limit",
        "_pending",
        "_pending_bytes",
        "_schedule",
        "_scheduled",
        "_sink",
        "_wakeup",
        "close_reason",
        "filter",
        "identity",
        "registered",
        "resumed_after",
    )

    def __init__(
        self,
        stream_filter: StreamFilter,
        limit: int,
        identity: str,
        schedule: Callable[[Subscription], None],
    ) -> None:
        self.filter = stream_filter
        self.identity = identity
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._limit = limit
        # The stream's task waiting for frames (or for its heartbeat's timeout).
        self._wakeup = Wakeup()
        self.close_reason: str | None = None
        self._abort: Callable[[], None] | None = None
        # The broker's flush: pushes are written out in one pass per burst.
        self._schedule = schedule
        self._scheduled = False
        self._sink: Sink | None = None
        # The last event id the stream resumed after (None: it did not resume).
        self.resumed_after: int | None = None
        # Receiving the events of its filter (see Broker.register).
        self.registered = False

    @property
    def resumed(self) -> bool:
        return self.resumed_after is not None

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def on_abort(self, abort: Callable[[], None]) -> None:
        """What to call to cut the connection when the buffer overflows."""
        self._abort = abort

    @property
    def sink(self) -> Sink | None:
        return self._sink

    def attach(self, sink: Sink) -> None:
        """Let the broker's flush write to this stream's socket while its task is idle."""
        self._sink = sink

    def push(self, frame: bytes) -> None:
        if self.close_reason is not None:
            return
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._pending_bytes > self._limit:
            self.close("overflow", abort=True)
            return
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self)

    def flush(self) -> None:
        """Write what is queued: straight to the socket when the stream's task is idle and
        nothing is in flight (no task wake-up), else through the task, which waits for the
        client to drain."""
        self._scheduled = False
        if not self._pending or self.close_reason is not None:
            return
        sink = self._sink
        if sink is not None and self._wakeup.waiting and sink.ready():
            sink.write(self.take())
            return
        self._wakeup.wake(True)

    def take(self) -> bytes:
        """Everything queued so far, as one write."""
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return data

    async def wait(self, timeout: float) -> bool:
        """Wait until something is queued or the stream is closed; False on timeout."""
        if self._pending or self.close_reason is not None:
            return True
        return await self._wakeup.wait(timeout)

    def close(self, reason: str, *, abort: bool = False) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self._pending.clear()
        self._pending_bytes = 0
        self._wakeup.cancel()
        self._wakeup.wake(True)
        if abort and self._abort is not None:
            self._abort()


class Broker:
    """Fan-out hub of one server process."""

    def __init__(self, *, replay_events: int = 10000, client_buffer_bytes: int = 1 << 20) -> None:
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self._ring: deque[Event] = deque(maxlen=replay_events)
        # The seq of the newest event that fell out of the ring (0: none yet).
        self.evicted = 0
        self._client_buffer_bytes = client_buffer_bytes
        self._subscriptions: set[Subscription] = set()
        self._by_topic: dict[str, set[Subscription]] = {topic: set() for topic in TOPICS}
        self._by_job_type: dict[str, set[Subscription]] = {}
        self._by_run: dict[str, set[Subscription]] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self.counters: dict[str, int] = {}
        self._dirty: list[Subscription] = []
        self._flush_handle: asyncio.Handle | None = None
        self._next_flush = 0.0

    # -- opening a stream ----------------------------------------------------------

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def open(self, stream_filter: StreamFilter, identity: str = "") -> Subscription:
        """A new stream, known for shutdown but receiving nothing until `register`."""
        sub = Subscription(stream_filter, self._client_buffer_bytes, identity, self._schedule)
        self._subscriptions.add(sub)
        return sub

    def resume_point(self, last_event_id: str) -> int | str:
        """The seq a stream can be replayed after, or the reason it cannot."""
        epoch, dash, seq_text = last_event_id.partition("-")
        if not dash or epoch != self.epoch or not seq_text.isdigit():
            return "unknown_last_event_id"
        last = int(seq_text)
        if last > self.seq:
            return "unknown_last_event_id"
        if last < self.evicted:
            return "replay_window_exceeded"
        return last

    def replay(
        self, sub: Subscription, after: int, keep: Callable[[Event], bool] | None = None
    ) -> bool:
        """Queue the ring's events after `after` that the stream's filter (and `keep`)
        accept; False, queueing nothing, when they would not fit in the stream's buffer."""
        # Newest first, and only as far back as `after`: a page's first stream resumes
        # from its render, a moment ago, not from the start of the ring.
        frames = [
            event.frame
            for event in takewhile(lambda event: event.seq > after, reversed(self._ring))
            if sub.filter.accepts(event.audience) and (keep is None or keep(event))
        ]
        frames.reverse()
        if sum(map(len, frames)) > self._client_buffer_bytes:
            return False
        sub.resumed_after = after
        for frame in frames:
            sub.push(frame)
        return True

    def send(self, sub: Subscription, name: str, data: str) -> int:
        """Queue a frame for this stream alone, with an id of its own; it is not replayed."""
        self.seq += 1
        sub.push(event_frame(self.event_id(self.seq), name, data))
        return self.seq

    def resync(self, sub: Subscription, reason: str) -> None:
        """Tell one stream that it may have missed something."""
        self.send(sub, "resync", dumps({"reason": reason}))
        self._count("resyncs_sent")

    def register(self, sub: Subscription) -> None:
        """Deliver the filter's events from now on, after the current state of its topics
        (unless the replay already carried it)."""
        if sub.registered or sub.closed:
            return
        for topic in sorted(sub.filter.topics):
            snapshot = self._snapshots.get(topic)
            if snapshot is None:
                continue
            if sub.resumed_after is not None and snapshot.seq > sub.resumed_after:
                continue  # replayed
            self.send(sub, snapshot.name, snapshot.data)
        sub.registered = True
        for topic in sub.filter.topics:
            self._by_topic[topic].add(sub)
        for job_type in sub.filter.job_types:
            self._by_job_type.setdefault(job_type, set()).add(sub)
        for run in sub.filter.runs:
            self._by_run.setdefault(run, set()).add(sub)

    def subscribe(
        self, stream_filter: StreamFilter, last_event_id: str | None, identity: str = ""
    ) -> Subscription:
        """Open and register a stream whose events the ring alone can replay: replay or
        resync, then the topics' current state. (Streams of run logs: see logs.py.)"""
        sub = self.open(stream_filter, identity)
        if last_event_id is not None:
            point = self.resume_point(last_event_id)
            if isinstance(point, str):
                self.resync(sub, point)
            elif not self.replay(sub, point):
                self.resync(sub, "replay_window_exceeded")
        self.register(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subscriptions:
            return
        self._subscriptions.discard(sub)
        sub._sink = None  # the connection may serve another request next
        if sub.close_reason == "overflow":
            self._count("clients_evicted")
        if not sub.registered:
            return
        sub.registered = False
        for topic in sub.filter.topics:
            self._by_topic[topic].discard(sub)
        for index, keys in (
            (self._by_job_type, sub.filter.job_types),
            (self._by_run, sub.filter.runs),
        ):
            for key in keys:
                subs = index.get(key)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del index[key]

    @property
    def subscription_count(self) -> int:
        return len(self._subscriptions)

    # -- publishing ----------------------------------------------------------------

    def _schedule(self, sub: Subscription) -> None:
        """Queue a stream for the next flush, and plan that flush if none is planned."""
        self._dirty.append(sub)
        if self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_flush:
            self._flush_handle = loop.call_soon(self._flush)
        else:
            self._flush_handle = loop.call_at(self._next_flush, self._flush)

    def _flush(self) -> None:
        """One pass over the streams with something queued.

        The next pass waits FLUSH_GAP times as long as this one took: a pass over
        thousands of streams then carries several events per write instead of one, and
        the loop keeps a third of its time for everything else. Small passes take
        microseconds, so nothing waits.
        """
        self._flush_handle = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        dirty, self._dirty = self._dirty, []
        for sub in dirty:
            try:
                sub.flush()
            except Exception as error:  # one broken socket must not stall the others
                log.warning("stream_write_failed", error=repr(error))
                sub.close("write_failed", abort=True)
        finished = loop.time()
        self._next_flush = finished + FLUSH_GAP * (finished - started)

    def _count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def _targets(self, audience: Audience) -> Iterable[Subscription]:
        kind, key = audience
        if kind == TOPIC:
            return self._by_topic[key]
        if kind == RUN:
            return self._by_run.get(key, ())
        if kind == JOB_TYPE:
            return self._by_job_type.get(key, ())
        return self._subscriptions

    def publish(
        self,
        name: str,
        data: Data,
        audience: Audience,
        *,
        key: object = None,
        snapshot: bool = False,
        skip: Collection[Subscription] = (),
    ) -> Event:
        """Encode once, keep for replay, queue for every registered stream that wants it.

        `data`: the event's JSON, or a function that makes it, called when a stream first
        takes the event (now, or at a replay; never, if no stream does). `snapshot`: the
        event is its topic's current state, sent to each stream on connect. `skip`:
        streams that already hold this event by other means.
        """
        self.seq += 1
        if snapshot:
            data = data if isinstance(data, str) else data()
            self._snapshots[audience[1]] = _Snapshot(self.seq, name, data)
        event = Event(self.seq, self.event_id(self.seq), name, data, audience)
        event.key = key
        if len(self._ring) == self._ring.maxlen:
            self.evicted = self._ring[0].seq
        self._ring.append(event)
        delivered = 0
        for sub in tuple(self._targets(audience)):
            if sub.registered and sub not in skip:
                sub.push(event.frame)
                delivered += 1
        self._count(f"events_published_{name}")
        self._count(f"frames_queued_{name}", delivered)
        return event

    def resync_all(self, reason: str) -> None:
        """Tell every stream that it may have missed something."""
        self.publish("resync", dumps({"reason": reason}), (ALL, ""))
        self._count("resyncs_sent", len(self._subscriptions))

    def close_all(self, reason: str) -> None:
        """End every stream (shutdown): each handler sees the reason and finishes."""
        for sub in tuple(self._subscriptions):
            sub.close(reason)
