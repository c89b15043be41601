"""Events published with their data still to make are encoded when a stream takes them."""

from __future__ import annotations

from typing import Any

from zapjobs_sse.server.live.broker import Broker, StreamFilter
from zapjobs_sse.server.live.frames import LazyJson

RUN = {"id": "r-1", "status": 2}


def _counting(calls: list[str]) -> Any:
    def shape(row: Any) -> dict[str, Any]:
        calls.append(row["id"])
        return {"id": row["id"], "status": row["status"]}

    return shape


async def test_an_event_no_stream_takes_is_encoded_only_when_replayed() -> None:
    broker = Broker()
    calls: list[str] = []
    detail = LazyJson(_counting(calls), RUN)
    broker.publish("RunDetailUpdated", detail, ("run", "r-1"))
    broker.publish("JobTypeRunUpdated", detail, ("job", "email"))
    assert calls == []  # nobody watches that run or job type

    before = f"{broker.epoch}-0"
    sub = broker.subscribe(StreamFilter(runs=frozenset({"r-1"})), before)
    frames = sub.take()
    assert b"event: RunDetailUpdated" in frames and b'"status":2' in frames
    assert b"JobTypeRunUpdated" not in frames
    job_viewer = broker.subscribe(StreamFilter(job_types=frozenset({"email"})), before)
    assert b'"status":2' in job_viewer.take()
    assert calls == ["r-1"]  # one encoding, shared by the row's two events


async def test_an_event_that_cannot_be_encoded_reaches_its_streams_as_resync() -> None:
    broker = Broker()
    sub = broker.subscribe(StreamFilter(runs=frozenset({"r-1"})), None)
    sub.take()
    broker.publish("RunDetailUpdated", LazyJson(_counting([]), {"id": "r-1"}), ("run", "r-1"))
    frame = sub.take()
    assert b"event: resync" in frame and b'"reason":"read_failed"' in frame
    assert f"id: {broker.epoch}-1".encode() in frame
