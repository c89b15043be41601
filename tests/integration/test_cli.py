"""The command line as a user runs it: real processes, real curl."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

from tests.conftest import RunningServer
from tests.server_process import free_port
from tests.support import Writer


def test_unreachable_database_is_one_line_naming_the_masked_dsn() -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "zapjobs_sse", "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ZAPJOBS_DSN": f"postgresql://app:s3cret@127.0.0.1:{port}/jobs"},
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert f"postgresql://app:***@127.0.0.1:{port}/jobs" in errors[0]
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_curl_receives_job_run_updated(server: RunningServer, writer: Writer) -> None:
    run_id = await writer.insert_run("email")
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sN", server.path("events?topics=runs"), stdout=asyncio.subprocess.PIPE
    )
    assert curl.stdout is not None
    try:
        # Nothing to send yet: the stream begins with a comment (the retry hint comes
        # with the first event).
        assert (await asyncio.wait_for(curl.stdout.readline(), 5)) == b": connected\n"
        # How fast: bench/ measures commit-to-client delay; here, that it arrives.
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (run_id,))
        while True:
            line = await asyncio.wait_for(curl.stdout.readline(), 10)
            if line.startswith(b"data:") and run_id.encode() in line:
                break
    finally:
        curl.send_signal(signal.SIGTERM)
        await curl.wait()


def test_port_in_use_is_one_line_not_a_traceback(database_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "zapjobs_sse",
                "serve",
                "--dsn",
                database_dsn,
                "--port",
                str(port),
                "--log-format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "address already in use" in errors[0].lower(), result.stderr
