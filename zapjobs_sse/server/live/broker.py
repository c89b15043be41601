"""In-process fan-out: subscriptions, filters, per-client buffers and the replay ring.

Each event is encoded to bytes once (frames.py) and the same bytes are appended to
the buffer of every subscription that wants it. A subscription's buffer is bounded:
a client that stops reading is disconnected when it overflows, and comes back with
Last-Event-ID (replayed from the ring when possible, `resync` otherwise).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog

from ...db.cursors import LogCursor
from .frames import dumps, event_frame

__all__ = [
    "TOPICS",
    "Audience",
    "Broker",
    "Event",
    "Sink",
    "StreamFilter",
    "Subscription",
]

log = structlog.get_logger("zapjobs_sse.server.live.broker")

TOPICS: Final = frozenset({"stats", "runs", "workers"})

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
    """What one stream asked for (DESIGN section 3)."""

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


@dataclass(slots=True)
class Event:
    seq: int
    name: str
    frame: bytes
    audience: Audience
    log_cursor: LogCursor | None = None


class Sink(Protocol):
    """A stream's socket, written to directly by the broker's flush when it is idle."""

    def ready(self) -> bool:
        """True when the socket has nothing in flight, so a write cannot reorder or pile up."""
        ...

    def write(self, data: bytes) -> None: ...


class _Waiting:
    """Marker: this subscription's log lines for a run are not flowing yet."""

    def __init__(self, start: LogCursor | None) -> None:
        self.start = start


class Subscription:
    """One connected stream: its filter, its bounded buffer of unsent frames, its log cursors."""

    __slots__ = (
        "_abort",
        "_deadline",
        "_limit",
        "_log_state",
        "_pending",
        "_pending_bytes",
        "_schedule",
        "_scheduled",
        "_sink",
        "_timer",
        "_waiter",
        "close_reason",
        "filter",
        "identity",
        "resumed",
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
        # A bare future per wait and one lazily re-armed timer: an asyncio.Event plus an
        # asyncio.timeout per wake-up cost several times more CPU per delivery.
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self.close_reason: str | None = None
        # Per run: the cursor of the last line delivered (None: none yet), or _Waiting.
        self._log_state: dict[str, LogCursor | _Waiting | None] = {}
        self._abort: Callable[[], None] | None = None
        # The broker's flush: pushes are written out in one pass per burst.
        self._schedule = schedule
        self._scheduled = False
        self._sink: Sink | None = None
        self.resumed = False

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def on_abort(self, abort: Callable[[], None]) -> None:
        """What to call to cut the connection when the buffer overflows."""
        self._abort = abort

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
        if sink is not None and self._waiter is not None and sink.ready():
            sink.write(self.take())
            return
        self._wake(True)

    def _wake(self, result: bool) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(result)

    def deliver(self, event: Event) -> None:
        """Queue an event's frame; log lines pass only in order and only once."""
        if event.log_cursor is not None:
            run = event.audience[1]
            state = self._log_state.get(run)
            if isinstance(state, _Waiting):
                return  # the bridge re-reads these lines from this stream's start cursor
            if state is not None and event.log_cursor <= state:
                return
            self._log_state[run] = event.log_cursor
        self.push(event.frame)

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
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._on_timer)
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def _on_timer(self) -> None:
        """The timer fires at the deadline of an earlier wait: re-arm it for the current one."""
        self._timer = None
        if self._waiter is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        self._wake(False)

    def close(self, reason: str, *, abort: bool = False) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self._pending.clear()
        self._pending_bytes = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake(True)
        if abort and self._abort is not None:
            self._abort()


@dataclass(slots=True)
class _RunWatch:
    """A run somebody streams the log of."""

    subscribers: set[Subscription] = field(default_factory=set)
    tracked_since: int | None = None  # seq from which the bridge published every line
    linger: asyncio.TimerHandle | None = None


class Broker:
    """Fan-out hub of one server process."""

    def __init__(
        self,
        *,
        replay_events: int = 10000,
        client_buffer_bytes: int = 1 << 20,
        run_linger: float = 30.0,
    ) -> None:
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self._ring: deque[Event] = deque(maxlen=replay_events)
        self._client_buffer_bytes = client_buffer_bytes
        self._run_linger = run_linger
        self._subscriptions: set[Subscription] = set()
        self._by_topic: dict[str, set[Subscription]] = {topic: set() for topic in TOPICS}
        self._by_job_type: dict[str, set[Subscription]] = {}
        self._runs: dict[str, _RunWatch] = {}
        self._log_requests: dict[str, LogCursor] = {}
        self.log_requests_ready = asyncio.Event()
        self.latest_stats: str | None = None
        self.counters: dict[str, int] = {}
        self._dirty: list[Subscription] = []
        self._flush_handle: asyncio.Handle | None = None
        self._next_flush = 0.0

    # -- subscribing ---------------------------------------------------------------

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def _resumable(self, last_event_id: str, stream_filter: StreamFilter) -> tuple[bool, str]:
        epoch, dash, seq_text = last_event_id.partition("-")
        if not dash or epoch != self.epoch or not seq_text.isdigit():
            return False, "unknown_last_event_id"
        last = int(seq_text)
        oldest = self._ring[0].seq if self._ring else self.seq + 1
        if last > self.seq:
            return False, "unknown_last_event_id"
        if last < oldest - 1:
            return False, "replay_window_exceeded"
        for run in stream_filter.runs:
            watch = self._runs.get(run)
            if watch is None or watch.tracked_since is None or watch.tracked_since > last:
                return False, "log_history_not_kept"
        return True, ""

    def subscribe(
        self, stream_filter: StreamFilter, last_event_id: str | None, identity: str = ""
    ) -> Subscription:
        """Register a stream and queue its first frames: resync or replay, then the stats.

        Log lines of its runs do not flow until `request_logs` gives their start, unless
        the stream resumed from the ring (which then already holds them).
        """
        sub = Subscription(stream_filter, self._client_buffer_bytes, identity, self._schedule)
        head_id = self.event_id(self.seq)
        if last_event_id is not None:
            resumable, reason = self._resumable(last_event_id, stream_filter)
            if resumable:
                last = int(last_event_id.rpartition("-")[2])
                sub.resumed = True
                for run in stream_filter.runs:
                    sub._log_state[run] = None
                for event in self._ring:
                    if event.seq > last and stream_filter.accepts(event.audience):
                        sub.deliver(event)
            else:
                sub.push(event_frame(head_id, "resync", dumps({"reason": reason})))
                self._count("resyncs_sent")
        for run in stream_filter.runs:
            sub._log_state.setdefault(run, _Waiting(None))
        # The stats come after any replay: their id is the head, so a client cut off
        # right after them must not skip the replayed events.
        if "stats" in stream_filter.topics and self.latest_stats is not None:
            sub.push(event_frame(head_id, "StatsUpdated", self.latest_stats))
        self._register(sub)
        return sub

    def request_logs(self, sub: Subscription, starts: Mapping[str, LogCursor]) -> None:
        """Ask the bridge to (re)read these runs' lines from these cursors for this stream."""
        for run, start in starts.items():
            state = sub._log_state.get(run)
            if not isinstance(state, _Waiting):
                continue
            state.start = start
            current = self._log_requests.get(run)
            self._log_requests[run] = start if current is None else min(current, start)
        if self._log_requests:
            self.log_requests_ready.set()

    def take_log_requests(self) -> dict[str, LogCursor]:
        """For the bridge: runs to read from a given cursor; their waiting streams start now."""
        requests = self._log_requests
        self._log_requests = {}
        self.log_requests_ready.clear()
        for run in requests:
            watch = self._runs.get(run)
            if watch is None:
                continue
            for sub in watch.subscribers:
                state = sub._log_state.get(run)
                if isinstance(state, _Waiting) and state.start is not None:
                    sub._log_state[run] = state.start
        return requests

    def _register(self, sub: Subscription) -> None:
        self._subscriptions.add(sub)
        for topic in sub.filter.topics:
            self._by_topic[topic].add(sub)
        for job_type in sub.filter.job_types:
            self._by_job_type.setdefault(job_type, set()).add(sub)
        for run in sub.filter.runs:
            watch = self._runs.setdefault(run, _RunWatch())
            if watch.linger is not None:
                watch.linger.cancel()
                watch.linger = None
            watch.subscribers.add(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subscriptions:
            return
        self._subscriptions.discard(sub)
        sub._sink = None  # the connection may serve another request next
        if sub.close_reason == "overflow":
            self._count("clients_evicted")
        for topic in sub.filter.topics:
            self._by_topic[topic].discard(sub)
        for job_type in sub.filter.job_types:
            subs = self._by_job_type.get(job_type)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_job_type[job_type]
        for run in sub.filter.runs:
            watch = self._runs.get(run)
            if watch is None:
                continue
            watch.subscribers.discard(sub)
            if not watch.subscribers and watch.linger is None:
                # Keep following the run a while, so a quick reconnect can still resume.
                loop = asyncio.get_running_loop()
                watch.linger = loop.call_later(self._run_linger, self._forget_run, run)

    def _forget_run(self, run: str) -> None:
        watch = self._runs.get(run)
        if watch is not None and not watch.subscribers:
            del self._runs[run]

    # -- what the bridge asks ------------------------------------------------------

    @property
    def subscription_count(self) -> int:
        return len(self._subscriptions)

    def watched_runs(self) -> set[str]:
        """Runs whose log lines and details somebody streams (or streamed a moment ago)."""
        return set(self._runs)

    def is_watched_run(self, run: str) -> bool:
        return run in self._runs

    def is_watched_job_type(self, job_type: str) -> bool:
        return job_type in self._by_job_type

    def wants_topic(self, topic: str) -> bool:
        return bool(self._by_topic[topic])

    def earliest_log_cursor(self, run: str) -> LogCursor | None:
        """The lowest cursor any stream of the run has received up to, if any."""
        watch = self._runs.get(run)
        if watch is None:
            return None
        cursors = [
            state
            for sub in watch.subscribers
            if isinstance(state := sub._log_state.get(run), LogCursor)
        ]
        return min(cursors) if cursors else None

    def mark_run_tracked(self, run: str) -> None:
        """The bridge follows this run's log from now on: resume can be proved from here."""
        watch = self._runs.get(run)
        if watch is not None and watch.tracked_since is None:
            watch.tracked_since = self.seq

    def untrack_runs(self) -> None:
        """The bridge lost lines (its connection broke): nothing can be proved from before."""
        for watch in self._runs.values():
            watch.tracked_since = None

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
            watch = self._runs.get(key)
            return watch.subscribers if watch else ()
        if kind == JOB_TYPE:
            return self._by_job_type.get(key, ())
        return self._subscriptions

    def publish(
        self, name: str, data: str, audience: Audience, log_cursor: LogCursor | None = None
    ) -> Event:
        """Encode once, keep for replay, queue for every stream that wants it."""
        self.seq += 1
        event = Event(self.seq, name, event_frame(self.event_id(self.seq), name, data), audience)
        event.log_cursor = log_cursor
        self._ring.append(event)
        delivered = 0
        for sub in tuple(self._targets(audience)):
            sub.deliver(event)
            delivered += 1
        self._count(f"events_published_{name}")
        self._count(f"frames_queued_{name}", delivered)
        if name == "StatsUpdated":
            self.latest_stats = data
        return event

    def resync_all(self, reason: str) -> None:
        """Tell every stream that it may have missed something."""
        self.publish("resync", dumps({"reason": reason}), (ALL, ""))
        self._count("resyncs_sent", len(self._subscriptions))

    def close_all(self, reason: str) -> None:
        """End every stream (shutdown): each handler sees the reason and finishes."""
        for sub in tuple(self._subscriptions):
            sub.close(reason)
