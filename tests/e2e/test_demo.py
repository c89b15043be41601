"""`zapjobs-sse demo` as a user runs it: one command, activity on the dashboard, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.conftest import start_command

URL_LINE = re.compile(r"dashboard at (http://\S+/)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_of(data_dir: Path) -> list[Any]:
    """The embedded PostgreSQL of this data directory and its children."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(data_dir) in " ".join(process.info["cmdline"] or []):
                found.append(process)
                found.extend(process.children(recursive=True))
    return found


async def completed_runs(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "api/runs?status=Completed&limit=10") as response:
        if response.status != 200:
            return 0
        return len((await response.json())["runs"])


async def test_demo_shows_completed_runs_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-pgdata"
    started = time.monotonic()
    process = await start_command("demo", "--data-dir", str(data_dir), "--port", str(free_port()))
    output: list[str] = []
    url_found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace")
            output.append(line)
            match = URL_LINE.search(line)
            if match and not url_found.done():
                url_found.set_result(match[1])

    reader = asyncio.create_task(read())
    try:
        deadline = started + 20
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                url = await url_found
        except TimeoutError:
            raise AssertionError("no dashboard URL within 20 s:\n" + "".join(output)) from None
        async with aiohttp.ClientSession() as http:
            while await completed_runs(http, url) == 0:
                assert time.monotonic() < deadline, "no completed run within 20 s:\n" + "".join(
                    output[-30:]
                )
                await asyncio.sleep(0.2)
        children = psutil.Process(process.pid).children(recursive=True) + postgres_of(data_dir)
        assert postgres_of(data_dir), "the demo did not run its own PostgreSQL"

        stopping = time.monotonic()
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            code = await process.wait()
        assert code == 0, "".join(output[-30:])
        assert time.monotonic() - stopping < 12
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left behind: {alive}"
        assert "Traceback" not in "".join(output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        async with asyncio.timeout(5):
            await reader
