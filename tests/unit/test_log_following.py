"""LogFollowing's rules, on an in-memory log: who gets which line, and when a resume is proved.

The same outcomes are proved end to end on PostgreSQL in tests/integration/test_stream.py
and test_resume.py; these pin the cases that timing makes rare there.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from zapjobs_sse.db import Database, LogCursor
from zapjobs_sse.server.live.broker import Broker, StreamFilter, Subscription
from zapjobs_sse.server.live.logs import LogFollowing

RUN = str(uuid.uuid4())
T0 = datetime(2026, 1, 1)


class MemoryLog:
    """The two questions LogFollowing asks the database, over a list of lines."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, *messages: str) -> list[LogCursor]:
        cursors = []
        for message in messages:
            stamp = T0 + timedelta(microseconds=len(self.rows) + 1)
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "run_id": RUN,
                "level": 2,
                "message": message,
                "category": None,
                "context_json": None,
                "duration_ms": None,
                "exception": None,
                "timestamp": stamp,
            }
            self.rows.append(row)
            cursors.append(LogCursor(stamp, str(row["id"])))
        return cursors

    async def logs_after(self, run_id: str, after: LogCursor, *, limit: int) -> list[Any]:
        newer = [r for r in self.rows if LogCursor(r["timestamp"], r["id"]) > after]
        return newer[:limit]


def _setup() -> tuple[Broker, LogFollowing, MemoryLog]:
    broker = Broker()
    memory = MemoryLog()
    return broker, LogFollowing(broker, cast(Database, memory)), memory


def _open(broker: Broker, following: LogFollowing, start: LogCursor) -> Subscription:
    sub = broker.open(StreamFilter(topics=frozenset(), runs=frozenset({RUN})))
    following.attach(sub, {RUN: start})
    broker.register(sub)
    return sub


def _received(sub: Subscription) -> list[tuple[int, str]]:
    """(seq, message) of each LogAdded frame queued for the stream."""
    out = []
    for block in sub.take().decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == "LogAdded":
            out.append(
                (int(fields["id"].rpartition("-")[2]), json.loads(fields["data"])["message"])
            )
    return out


async def test_a_stream_behind_the_followed_cursor_is_caught_up_alone_then_reads_the_ring() -> None:
    broker, following, memory = _setup()
    start = memory.write("a", "b")
    first = _open(broker, following, start[-1])
    memory.write("c", "d")
    await following.read([RUN])
    assert [m for _, m in _received(first)] == ["c", "d"]

    behind = _open(broker, following, start[0])  # holds "a" only
    memory.write("e")
    await following.read([RUN])
    lines = _received(behind)
    assert [m for _, m in lines] == ["b", "c", "d", "e"]
    assert [seq for seq, _ in lines] == sorted({seq for seq, _ in lines})
    assert [m for _, m in _received(first)] == ["e"]  # the others get each line once

    memory.write("f")
    await following.read([RUN])
    assert [m for _, m in _received(behind)] == ["f"]


async def test_a_resume_from_inside_a_catch_up_is_refused_and_from_its_end_proved() -> None:
    broker, following, memory = _setup()
    start = memory.write("a", "b", "c")
    _open(broker, following, start[-1])
    await following.read([RUN])
    behind = _open(broker, following, start[0])
    await following.read([RUN])
    seqs = [seq for seq, _ in _received(behind)]
    assert len(seqs) == 2
    assert following.resume_refusal([RUN], seqs[0]) == "log_history_not_kept"
    assert following.resume_refusal([RUN], seqs[-1]) is None


async def test_a_stream_holding_lines_not_yet_published_skips_them() -> None:
    broker, following, memory = _setup()
    start = memory.write("a")
    first = _open(broker, following, start[-1])
    await following.read([RUN])
    ahead = memory.write("b", "c")  # committed, not read yet by the bridge
    rendered = _open(broker, following, ahead[0])  # its page showed "b"
    await following.read([RUN])
    assert [m for _, m in _received(rendered)] == ["c"]
    assert [m for _, m in _received(first)] == ["b", "c"]


async def test_a_lost_connection_refuses_resumes_from_before_it() -> None:
    broker, following, memory = _setup()
    start = memory.write("a")
    _open(broker, following, start[-1])
    await following.read([RUN])
    before = broker.seq
    assert following.resume_refusal([RUN], before) is None
    following.lost()
    assert following.resume_refusal([RUN], before) == "log_history_not_kept"
    broker.resync_all("database_reconnected")  # as the bridge does, then it reads again
    await following.read(following.runs())
    assert following.resume_refusal([RUN], before) == "log_history_not_kept"
    assert following.resume_refusal([RUN], broker.seq) is None


async def test_a_run_nobody_follows_is_refused() -> None:
    broker, following, _ = _setup()
    assert following.resume_refusal([RUN], broker.seq) == "log_history_not_kept"
