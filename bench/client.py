"""The load generator: lean SSE clients (raw asyncio protocols) in several processes.

Each client parses only what the measurement needs: it finds complete frames, pulls one
integer key per event out of the bytes with a regular expression, and stamps it with the
arrival time of the read that completed it. The keys are matched to commit times by the
scenario, so no clock travels in the payload.

At high rates, parsing every stream would make the load generator the bottleneck: with
`timed_every=n`, one stream in n (spread over the order the streams were opened in) is
timed, and the others only count their events (a byte search for the key's marker), which
is enough to prove that every delivery arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["ClientPool", "Collected", "raise_fd_limit"]

Pipe = multiprocessing.connection.Connection


def raise_fd_limit() -> int:
    """Raise the open-file limit of this process to its hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Collected:
    """What the clients saw while recording."""

    keys: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    comments: int = 0  # comment frames (heartbeats)
    per_connection: list[int] = field(default_factory=list)  # keys received, per stream
    out_of_order: int = 0  # keys that were not the one after the previous, per stream
    closed: int = 0  # streams the server ended

    def merge(self, other: Collected) -> None:
        self.keys.extend(other.keys)
        self.times.extend(other.times)
        self.comments += other.comments
        self.per_connection.extend(other.per_connection)
        self.out_of_order += other.out_of_order
        self.closed += other.closed


def _marker(pattern: bytes) -> bytes:
    """The literal text before the key's group: what an untimed stream counts."""
    return pattern.split(b"(", 1)[0].replace(b"\\", b"")


class _Streams:
    """The state shared by the streams of one client process."""

    def __init__(self, pattern: bytes, check_order: bool, timed_every: int) -> None:
        self.pattern = re.compile(pattern)
        self.marker = _marker(pattern)
        self.check_order = check_order
        self.timed_every = timed_every
        self.recording = False
        self.collected = Collected()
        self.protocols: list[_StreamProtocol] = []
        self.opened = 0
        self.failed = 0


class _StreamProtocol(asyncio.Protocol):
    __slots__ = (
        "_head_done",
        "_owner",
        "_request",
        "_tail",
        "answered",
        "count",
        "last",
        "timed",
        "transport",
    )

    def __init__(self, owner: _Streams, request: bytes, timed: bool) -> None:
        self._owner = owner
        self._request = request
        self._tail = b""
        self._head_done = False
        self.answered = asyncio.Event()  # the response head arrived, or the connection ended
        self.timed = timed
        self.count = 0
        self.last = -1
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.collected.closed += 1
        self.answered.set()

    def data_received(self, data: bytes) -> None:
        owner = self._owner
        buffer = self._tail + data if self._tail else data
        if not self._head_done:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                self._tail = buffer
                return
            self._head_done = True
            self.answered.set()
            if b" 200 " in head.split(b"\r\n", 1)[0]:
                owner.opened += 1
            else:
                owner.failed += 1
            buffer = rest
        # Frames end with a blank line: "\n\n" here, "\r\n\r\n" from aiohttp-sse/sse-starlette.
        end = buffer.rfind(b"\n\n")
        end_crlf = buffer.rfind(b"\n\r\n")
        if end_crlf > end:
            end = end_crlf + 1
        if end < 0:
            self._tail = buffer
            return
        self._tail = buffer[end + 2 :]
        if not owner.recording:
            return
        complete = buffer[:end]
        collected = owner.collected
        collected.comments += complete.count(b"\n:") + complete.startswith(b":")
        if not self.timed:
            self.count += complete.count(owner.marker)
            return
        found = owner.pattern.findall(complete)
        if not found:
            return
        now = time.time()
        keys = [int(key) for key in found]
        collected.keys.extend(keys)
        collected.times.extend([now] * len(keys))
        self.count += len(keys)
        if owner.check_order:
            last = self.last
            for key in keys:
                if last >= 0 and key != last + 1:
                    collected.out_of_order += 1
                last = key
            self.last = last
        else:
            self.last = keys[-1]


async def _open_all(
    streams: _Streams, host: str, port: int, request: bytes, count: int, first_source: int
) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(64)

    async def open_one(index: int) -> None:
        # Spread over 127.0.0.x source addresses: one address has ~28k ephemeral ports.
        source = f"127.0.0.{1 + (first_source + index) % 200}"
        async with gate:
            protocol = _StreamProtocol(streams, request, index % streams.timed_every == 0)
            try:
                await loop.create_connection(lambda: protocol, host, port, local_addr=(source, 0))
            except OSError:
                streams.failed += 1
                return
            streams.protocols.append(protocol)
            # Held until the server answers: more connections than it accepts would
            # overflow its listen queue, and each dropped SYN waits a second to be retried.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(protocol.answered.wait(), 30)

    await asyncio.gather(*(open_one(index) for index in range(count)))
    deadline = time.monotonic() + 30
    while streams.opened + streams.failed < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def _serve(pipe: Pipe, spec: dict[str, Any]) -> None:
    streams = _Streams(spec["pattern"], spec["check_order"], spec["timed_every"])
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    request = (
        f"GET {spec['path']} HTTP/1.1\r\nHost: {spec['host']}:{spec['port']}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()
    while True:
        command = await commands.get()
        os.set_blocking(pipe.fileno(), True)  # the event loop made it non-blocking
        if command[0] == "connect":
            await _open_all(
                streams, spec["host"], spec["port"], request, spec["count"], spec["first"]
            )
            pipe.send((streams.opened, streams.failed))
        elif command[0] == "record":
            streams.collected = Collected()
            for protocol in streams.protocols:
                protocol.count = 0
                protocol.last = -1
            streams.recording = True
            pipe.send(True)
        elif command[0] == "count":
            pipe.send(sum(protocol.count for protocol in streams.protocols))
        elif command[0] == "collect":
            streams.recording = False
            collected = streams.collected
            collected.per_connection = [protocol.count for protocol in streams.protocols]
            pipe.send(collected)
            streams.collected = Collected()
        elif command[0] == "close":
            for protocol in streams.protocols:
                if protocol.transport is not None:
                    protocol.transport.abort()
            pipe.send(True)
            return


def _child(pipe: Pipe, spec: dict[str, Any]) -> None:
    raise_fd_limit()
    try:
        import uvloop

        uvloop.run(_serve(pipe, spec))
    except ImportError:
        asyncio.run(_serve(pipe, spec))


class ClientPool:
    """`count` SSE streams to host:port/path, spread over `processes` processes."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        count: int,
        *,
        processes: int = 2,
        pattern: bytes = rb'"progress":(\d+)',
        check_order: bool = False,
        timed_every: int = 1,
    ) -> None:
        context = multiprocessing.get_context("fork")  # fast; created from a thread-free parent
        self._pipes: list[Pipe] = []
        self._processes: list[Any] = []
        processes = max(1, min(processes, count))
        for index in range(processes):
            share = count // processes + (1 if index < count % processes else 0)
            parent, child = context.Pipe()
            spec = {
                "host": host,
                "port": port,
                "path": path,
                "count": share,
                "first": index * 37,
                "pattern": pattern,
                "check_order": check_order,
                "timed_every": timed_every,
            }
            process = context.Process(target=_child, args=(child, spec), daemon=True)
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)
        self.count = count

    def _all(self, command: str, timeout: float = 60.0) -> list[Any]:
        for pipe in self._pipes:
            pipe.send((command,))
        answers = []
        for pipe in self._pipes:
            if not pipe.poll(timeout):
                raise TimeoutError(f"load generator did not answer {command!r}")
            answers.append(pipe.recv())
        return answers

    def connect(self) -> int:
        """Open every stream; return how many the server accepted."""
        return sum(opened for opened, _ in self._all("connect", timeout=90.0))

    def record(self) -> None:
        self._all("record")

    def delivered(self) -> int:
        """Events received by every stream since `record()`, timed or only counted."""
        return sum(self._all("count"))

    def collect(self) -> Collected:
        total = Collected()
        for part in self._all("collect"):
            total.merge(part)
        return total

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._all("close", timeout=10.0)
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
