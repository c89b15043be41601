"""`zapjobs-sse serve` as a real child process, with its stdout kept line by line."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import aiohttp

__all__ = ["ServerProcess", "free_port", "wait_ready"]

_URL_LINE = re.compile(r"dashboard at (http://\S+/)")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, timeout: float = 10.0) -> None:
    """Poll a /ready URL until it answers 200 (the bridge listens); bounded."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
                    body = await response.text()
            except aiohttp.ClientError as error:
                body = str(error)
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not ready: {body}")
            await asyncio.sleep(0.05)


class ServerProcess:
    """Start with `start()`, stop with `stop()` (SIGTERM, then a bounded wait)."""

    def __init__(self, dsn: str, *args: str, port: int = 0, env: dict[str, str] | None = None):
        self.argv: Sequence[str] = [
            sys.executable,
            "-m",
            "zapjobs_sse",
            "serve",
            "--dsn",
            dsn,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ]
        self._env = {**os.environ, **(env or {})}
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.url = ""

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, "not started"
        return self._process

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start and wait until it serves; `url` is then the dashboard's base URL."""
        self._process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self._env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for_line(lambda text: _URL_LINE.search(text) is not None, timeout)
        match = _URL_LINE.search(line)
        assert match is not None
        self.url = match[1]
        return self

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 5.0) -> str:
        """The first line (from the start) that satisfies predicate; bounded wait."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                exited = self._process is not None and self._process.poll() is not None
                if remaining <= 0 or (exited and not self._reader_alive()):
                    output = "\n".join(self.lines[-30:])
                    raise AssertionError(f"no such line from the server; last lines:\n{output}")
                self._changed.wait(min(remaining, 0.2))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the exit (killed if it does not come); the exit code."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if process.stdout is not None:
            process.stdout.close()
        return code
