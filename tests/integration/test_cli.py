"""The command line as a user runs it: real processes, real curl."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import RunningServer, repo_root
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


def readme_commands(section: str) -> list[str]:
    """The commands of the `sh` blocks of a README section, one per line."""
    text = (repo_root() / "README.md").read_text("utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", body, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def command_argv(line: str, port: int) -> list[str]:
    """A README line as an argv: the installed zapjobs-sse, and curl on the test's port."""
    argv = shlex.split(line.replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    if argv[0] == "zapjobs-sse":
        installed = Path(sys.executable).with_name("zapjobs-sse")
        argv[:1] = [str(installed)] if installed.exists() else [sys.executable, "-m", "zapjobs_sse"]
    return argv


async def test_the_readme_curl_walkthrough_works_as_written_on_a_fresh_machine(
    tmp_path: Path,
) -> None:
    """README "Watch the stream with curl", its commands as they are written: only the
    data directory and the port are moved (by environment variable and in the URL)."""
    serve, curl, enqueue, worker = readme_commands("Watch the stream with curl")
    assert serve == "zapjobs-sse serve" and curl.startswith("curl -N ")
    assert enqueue.startswith("zapjobs-sse enqueue ") and worker.startswith("zapjobs-sse worker ")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "ZAPJOBS_"))}
    env |= {"ZAPJOBS_DATA_DIR": str(tmp_path / "pgdata"), "ZAPJOBS_PORT": str(port)}
    env |= {"ZAPJOBS_LOG_FORMAT": "json"}
    processes: list[asyncio.subprocess.Process] = []

    async def start(line: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *command_argv(line, port),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            # curl's progress meter (shown when its output is not a terminal) aside
            stderr=asyncio.subprocess.DEVNULL
            if line.startswith("curl")
            else asyncio.subprocess.STDOUT,
        )
        processes.append(process)
        return process

    async def read_until(process: asyncio.subprocess.Process, wanted: str) -> list[str]:
        assert process.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(60):
            while wanted not in "".join(lines[-3:]):
                line = await process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line.decode())
        return lines

    try:
        await read_until(await start(serve), "dashboard at")
        watching = await start(curl)
        await read_until(watching, "event: StatsUpdated")
        adding = await start(enqueue)
        added, _ = await asyncio.wait_for(adding.communicate(), 60)
        assert adding.returncode == 0, added
        run_id = added.decode().split()[-1]  # printed last, after the log lines
        assert str(uuid.UUID(run_id)) == run_id, added
        pending = await read_until(watching, f'"id":"{run_id}"')
        assert '"status":"Pending"' in pending[-1] and "JobRunUpdated" in pending[-2]
        await start(worker)
        done = await read_until(watching, '"status":"Completed"')
        assert any('"status":"Running"' in line for line in done)
        assert run_id in done[-1] and '"jobTypeId":"send-welcome-email"' in done[-1]
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(30):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()
