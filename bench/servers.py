"""Starting a system under test in its own process and watching its CPU and memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

__all__ = ["RunningServer", "free_port", "running_server", "wait_for_port"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    kind: str
    port: int
    process: psutil.Process

    def cpu_seconds(self) -> float:
        """CPU time of the server process and its children (nginx for nchan), in seconds."""
        total = 0.0
        for process in (self.process, *self.process.children(recursive=True)):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@contextmanager
def running_server(kind: str, dsn: str, heartbeat: float = 15.0) -> Iterator[RunningServer]:
    """Run `python -m bench.hubs KIND` until the block ends."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.hubs", kind, dsn, str(port), str(heartbeat)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{kind} did not start (exit code {child.poll()})")
        wait_for_port(port, time.monotonic() + 20)
        time.sleep(0.5)  # the LISTEN connection and the first stats query
        yield RunningServer(kind, port, psutil.Process(child.pid))
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
