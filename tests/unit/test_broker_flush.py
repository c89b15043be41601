"""The broker's flush: frames go straight to an idle stream's socket, one pass per burst."""

from __future__ import annotations

import asyncio
import time

from zapjobs_sse.server.live.broker import Broker, StreamFilter, Subscription


class FakeSocket:
    """A stream's socket as the broker sees it; records each write and when it happened."""

    def __init__(self, *, ready: bool = True, write_cost: float = 0.0) -> None:
        self.is_ready = ready
        self.write_cost = write_cost
        self.writes: list[tuple[float, bytes]] = []

    def ready(self) -> bool:
        return self.is_ready

    def write(self, data: bytes) -> None:
        if self.write_cost:
            time.sleep(self.write_cost)  # a slow send(): the pass takes this long per stream
        self.writes.append((time.monotonic(), data))


async def _parked(broker: Broker, socket: FakeSocket) -> tuple[Subscription, asyncio.Task[bool]]:
    """A subscribed stream whose task has written its start and waits for more."""
    sub = broker.subscribe(StreamFilter(), None)
    sub.take()
    sub.attach(socket)
    waiting = asyncio.create_task(sub.wait(30))
    await asyncio.sleep(0)
    return sub, waiting


async def test_a_burst_reaches_an_idle_stream_in_one_write_without_waking_it() -> None:
    broker = Broker()
    socket = FakeSocket()
    sub, waiting = await _parked(broker, socket)

    for n in range(3):
        broker.publish("JobRunUpdated", f'{{"n": {n}}}', ("topic", "runs"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    assert len(socket.writes) == 1
    data = socket.writes[0][1]
    assert data.index(b'"n": 0') < data.index(b'"n": 1') < data.index(b'"n": 2')
    assert not waiting.done()  # the stream's task slept through it
    assert sub.pending_bytes == 0
    sub.close("test")
    assert await waiting is True


async def test_a_busy_socket_leaves_the_frames_to_the_streams_task() -> None:
    broker = Broker()
    socket = FakeSocket(ready=False)  # something is still in flight on this connection
    sub, waiting = await _parked(broker, socket)

    broker.publish("JobRunUpdated", '{"n": 1}', ("topic", "runs"))
    assert await asyncio.wait_for(waiting, 1) is True

    assert socket.writes == []
    assert b'"n": 1' in sub.take()  # the task writes it, and waits for the client to drain


async def test_a_slow_pass_spaces_the_next_and_merges_what_came_meanwhile() -> None:
    broker = Broker()
    streams = [await _parked(broker, FakeSocket(write_cost=0.002)) for _ in range(25)]
    sockets = [sub._sink for sub, _ in streams]

    broker.publish("JobRunUpdated", '{"n": 1}', ("topic", "runs"))
    await asyncio.sleep(0)  # the first pass: about 25 x 2 ms
    first_pass = [s.writes[0][0] for s in sockets if isinstance(s, FakeSocket)]
    pass_length = max(first_pass) - min(first_pass)
    broker.publish("JobRunUpdated", '{"n": 2}', ("topic", "runs"))
    broker.publish("JobRunUpdated", '{"n": 3}', ("topic", "runs"))
    await asyncio.sleep(pass_length + 0.5)

    for socket in sockets:
        assert isinstance(socket, FakeSocket)
        assert len(socket.writes) == 2  # events 2 and 3 share the second write
        assert b'"n": 2' in socket.writes[1][1] and b'"n": 3' in socket.writes[1][1]
    second_pass_start = min(s.writes[1][0] for s in sockets if isinstance(s, FakeSocket))
    gap = second_pass_start - max(first_pass)
    # Writing takes at most two thirds of the loop's time (a gap of half a pass), and
    # holds events back no longer than that (plus scheduling slack).
    assert 0.45 * pass_length <= gap <= 0.5 * pass_length + 0.1, (gap, pass_length)
    for sub, waiting in streams:
        assert not waiting.done()
        sub.close("test")


async def test_a_stream_without_a_socket_yet_is_woken() -> None:
    broker = Broker()
    sub = broker.subscribe(StreamFilter(), None)
    sub.take()
    waiting = asyncio.create_task(sub.wait(30))
    await asyncio.sleep(0)

    broker.publish("JobRunUpdated", '{"n": 1}', ("topic", "runs"))

    assert await asyncio.wait_for(waiting, 1) is True
    assert b'"n": 1' in sub.take()


class BrokenSocket(FakeSocket):
    def write(self, data: bytes) -> None:
        raise RuntimeError("Cannot call write() after write_eof()")


async def test_a_socket_that_fails_ends_its_stream_and_not_the_others() -> None:
    broker = Broker()
    broken, waiting_broken = await _parked(broker, BrokenSocket())
    healthy_socket = FakeSocket()
    healthy, waiting_healthy = await _parked(broker, healthy_socket)

    broker.publish("JobRunUpdated", '{"n": 1}', ("topic", "runs"))
    await asyncio.sleep(0)

    assert broken.close_reason == "write_failed"
    assert await asyncio.wait_for(waiting_broken, 1) is True  # its handler ends
    assert len(healthy_socket.writes) == 1 and not waiting_healthy.done()
    broker.publish("JobRunUpdated", '{"n": 2}', ("topic", "runs"))
    await asyncio.sleep(0.01)
    assert len(healthy_socket.writes) == 2
    healthy.close("test")
