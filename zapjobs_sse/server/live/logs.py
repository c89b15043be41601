"""LogFollowing: which run logs the bridge reads, from where, and for which streams.

The one owner of log following. For every run somebody streams, it keeps the cursor
up to which the bridge has published the run's lines (every line after it will be
published, once, in order) and the streams that read them:

- a stream that starts at or after that cursor reads the ring's lines at once (lines
  it already holds, up to its own start, are skipped);
- a stream that starts before it is caught up with the lines in between, read by the
  bridge and sent to that stream alone; the ring's lines then follow;
- a run nobody followed is followed from the first stream's start.

So the ring holds each run's lines in cursor order, each once, from `since` on, and a
client that read a run's lines up to event L can resume from L with the ring alone,
unless L falls while its stream was being caught up (then it gets `resync`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from ...db import LOG_PAGE, Database, LogCursor, RowChange
from .broker import RUN, Broker, Event, Subscription
from .frames import dumps
from .wire import log_wire

__all__ = ["LogFollowing"]

log = structlog.get_logger("zapjobs_sse.server.live.logs")

LINE_EVENT = "LogAdded"


@dataclass(slots=True)
class _Run:
    """One followed run."""

    # Every line after this cursor is published to the ring, in order, once.
    cursor: LogCursor
    # The seq from which that has held without a gap (None: not proved, e.g. after a
    # lost connection, until the bridge reads again).
    since: int | None
    # Streams that read the ring's lines of the run.
    readers: set[Subscription] = field(default_factory=set)
    # Readers that already hold lines the bridge has not published yet: up to a floor.
    floors: dict[Subscription, LogCursor] = field(default_factory=dict)
    # Streams to catch up from their start cursor before they read the ring.
    joining: dict[Subscription, LogCursor] = field(default_factory=dict)
    # Seqs (opened, done) between which a stream was being caught up or floored: a
    # Last-Event-ID strictly inside cannot be proved complete; and those still open.
    windows: list[tuple[int, int]] = field(default_factory=list)
    opened: dict[Subscription, int] = field(default_factory=dict)
    linger: asyncio.TimerHandle | None = None


class LogFollowing:
    """The run logs followed by one server process (see the module docstring)."""

    def __init__(self, broker: Broker, database: Database, *, linger: float = 30.0) -> None:
        self._broker = broker
        self._database = database
        self._linger = linger
        self._runs: dict[str, _Run] = {}
        # Set when a run needs reading now (a stream to catch up, a run to start).
        self.wanted = asyncio.Event()
        self._wanted_runs: set[str] = set()
        # Statements run to read log lines (for the statements-per-change count).
        self.reads = 0

    # -- for the streams -------------------------------------------------------------

    def cursor(self, run: str) -> LogCursor | None:
        """The cursor up to which the run's lines are published (None: not followed)."""
        followed = self._runs.get(run)
        return followed.cursor if followed is not None else None

    def resume_refusal(self, runs: Iterable[str], after: int) -> str | None:
        """Why a stream of these runs cannot be replayed after `after`, if it cannot."""
        for run in runs:
            followed = self._runs.get(run)
            if followed is None or followed.since is None or followed.since > after:
                return "log_history_not_kept"
            followed.windows = [w for w in followed.windows if w[1] > self._broker.evicted]
            if any(opened < after < done for opened, done in followed.windows) or any(
                opened < after for opened in followed.opened.values()
            ):
                return "log_history_not_kept"
        return None

    def attach(self, sub: Subscription, starts: Mapping[str, LogCursor]) -> None:
        """Start the stream's lines of each run after its start cursor."""
        for run, start in starts.items():
            followed = self._runs.get(run)
            if followed is None:
                # Nobody follows it: follow it from here; the bridge reads it now.
                self._runs[run] = _Run(start, self._broker.seq, {sub})
                self._want(run)
                continue
            self._keep(followed)
            if start == followed.cursor:
                followed.readers.add(sub)
                continue
            followed.opened[sub] = self._broker.seq
            if start > followed.cursor:
                followed.readers.add(sub)
                followed.floors[sub] = start
            else:
                followed.joining[sub] = start
            self._want(run)

    def attach_resumed(self, sub: Subscription, floors: Mapping[str, LogCursor]) -> None:
        """A stream replayed from the ring (see `resume_refusal`) reads on from there;
        `floors`: lines it says it holds (logs_after)."""
        for run in sub.filter.runs:
            followed = self._runs[run]
            self._keep(followed)
            followed.readers.add(sub)
            floor = floors.get(run)
            if floor is not None and floor > followed.cursor:
                followed.floors[sub] = floor

    def replay_filter(self, floors: Mapping[str, LogCursor]) -> Callable[[Event], bool]:
        """For the ring replay of a resumed stream: lines up to each run's floor are held."""

        def keep(event: Event) -> bool:
            floor = floors.get(event.audience[1]) if event.name == LINE_EVENT else None
            return floor is None or not isinstance(event.key, LogCursor) or event.key > floor

        return keep

    def detach(self, sub: Subscription) -> None:
        """The stream ended; a run nobody reads is still followed a while, so that a quick
        reconnect can resume."""
        for run in sub.filter.runs:
            followed = self._runs.get(run)
            if followed is None:
                continue
            followed.readers.discard(sub)
            followed.floors.pop(sub, None)
            followed.joining.pop(sub, None)
            self._close_window(followed, sub)
            if not followed.readers and not followed.joining and followed.linger is None:
                loop = asyncio.get_running_loop()
                followed.linger = loop.call_later(self._linger, self._forget, run)

    def _keep(self, followed: _Run) -> None:
        if followed.linger is not None:
            followed.linger.cancel()
            followed.linger = None

    def _forget(self, run: str) -> None:
        followed = self._runs.get(run)
        if followed is not None and not followed.readers and not followed.joining:
            del self._runs[run]

    def _want(self, run: str) -> None:
        self._wanted_runs.add(run)
        self.wanted.set()

    def _close_window(self, followed: _Run, sub: Subscription) -> None:
        opened = followed.opened.pop(sub, None)
        if opened is not None:
            followed.windows.append((opened, self._broker.seq))

    # -- for the bridge --------------------------------------------------------------

    def runs(self) -> set[str]:
        """Every followed run (or lingering after its last stream)."""
        return set(self._runs)

    def lost(self) -> None:
        """The bridge lost lines (its connection broke): nothing is proved from before."""
        for followed in self._runs.values():
            followed.since = None

    async def read(
        self, changed: Iterable[str], carried: Mapping[str, Sequence[RowChange]] | None = None
    ) -> None:
        """Read and publish the new lines of these runs (those followed) and of every
        run a stream waits for; catch those streams up. `carried`: the changes that
        carried lines whole (the WAL feed), by run, in commit order: published without a
        read where nothing else is to be done for their run (and decoded only then)."""
        wanted, self._wanted_runs = self._wanted_runs, set()
        self.wanted.clear()
        carried = carried or {}
        changed = set(changed)
        todo = sorted((changed | set(carried) | wanted) & set(self._runs))
        for done, run in enumerate(todo):
            try:
                lines = carried.get(run)
                if (
                    lines is None
                    or run in changed
                    or run in wanted
                    or not self._publish_carried(run, lines)
                ):
                    await self._read_run(run)
            except BaseException:
                for left in todo[done:]:  # read them again next time
                    self._want(left)
                raise

    def _publish_carried(self, run: str, lines: Sequence[RowChange]) -> bool:
        """Publish carried lines after the run's cursor; False when the run must be read
        instead (a stream to catch up, or no proof since a lost connection)."""
        followed = self._runs[run]
        if followed.since is None or followed.joining:
            return False
        rows = [line.row for line in lines]
        # A transaction's lines in cursor order (a statement's may come in another).
        for row in sorted(rows, key=lambda line: LogCursor(line["timestamp"], line["id"])):
            cursor = LogCursor(row["timestamp"], row["id"])
            if cursor > followed.cursor:
                self._publish(followed, run, cursor, dumps(log_wire(row)))
        self._settle_floors(followed)
        return True

    async def _read_run(self, run: str) -> None:
        followed = self._runs[run]
        if followed.since is None:
            followed.since = self._broker.seq
        joining = dict(followed.joining)
        start = min([followed.cursor, *joining.values()])
        while True:
            self.reads += 1
            rows = await self._database.logs_after(run, start, limit=LOG_PAGE)
            if self._runs.get(run) is not followed:
                return  # forgotten meanwhile
            for row in rows:
                start = LogCursor(row["timestamp"], row["id"])
                data = dumps(log_wire(row))
                # A stream being caught up gets the line alone (page by page, so that
                # its socket drains in between), the others from the ring.
                for sub, begins in joining.items():
                    if start > begins and sub in followed.joining:
                        self._broker.send(sub, LINE_EVENT, data)
                if start > followed.cursor:
                    self._publish(followed, run, start, data)
            if len(rows) < LOG_PAGE:
                break
        for sub in joining:
            if sub in followed.joining:  # not ended meanwhile
                del followed.joining[sub]
                followed.readers.add(sub)
                self._close_window(followed, sub)
        self._settle_floors(followed)

    def _settle_floors(self, followed: _Run) -> None:
        """Readers whose floor the published lines have reached read every line now."""
        for sub, floor in list(followed.floors.items()):
            if floor <= followed.cursor:
                del followed.floors[sub]
                self._close_window(followed, sub)

    def _publish(self, followed: _Run, run: str, cursor: LogCursor, data: str) -> None:
        skip: Collection[Subscription] = ()
        if followed.joining or followed.floors:
            skip = {*followed.joining}
            skip.update(sub for sub, floor in followed.floors.items() if floor >= cursor)
        self._broker.publish(LINE_EVENT, data, (RUN, run), key=cursor, skip=skip)
        followed.cursor = cursor
