"""The embedded PostgreSQL as the commands use it: an old data directory, a shared server."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.conftest import PrivatePostgres, start_command
from tests.support import Writer

JOBS = "tests.integration.executor_jobs:registry"


async def _command(*args: str, until_stopped: asyncio.Event | None = None) -> tuple[int, str]:
    """Run `zapjobs-sse ARGS` against the embedded server of its --data-dir; its exit code
    and everything it wrote. With `until_stopped`, SIGTERM it once the event is set."""
    process = await start_command(*args)
    output = asyncio.create_task(process.communicate())
    if until_stopped is not None:
        waiting = asyncio.create_task(until_stopped.wait())
        await asyncio.wait({output, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(30):
            stdout, _ = await output
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode is not None
    return process.returncode, stdout.decode()


def _events(output: str) -> list[str]:
    return [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]


def _old_cluster(data_dir: Path) -> None:
    """The top of a PostgreSQL 16 data directory, as the embedded server of earlier
    versions (pgserver, PostgreSQL 16.2) left them."""
    for folder in ("base/1", "global", "pg_wal", "pg_xact"):
        (data_dir / folder).mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text("16\n")
    (data_dir / "global" / "pg_control").write_bytes(b"\0" * 8192)
    (data_dir / "postgresql.conf").write_text("# PostgreSQL 16\n")
    (data_dir / ".handle_pids.json").write_text("[]")


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["migrate"]])
async def test_an_old_data_directory_is_one_line_saying_what_to_do(
    tmp_path: Path, command: list[str]
) -> None:
    data_dir = tmp_path / "pgdata"
    _old_cluster(data_dir)
    before = _tree(data_dir)

    code, output = await _command(*command, "--data-dir", str(data_dir))

    assert code == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("zapjobs-sse: error:")]
    assert len(errors) == 1, output
    error = errors[0]
    assert str(data_dir) in error
    assert "PostgreSQL 16" in error and "PostgreSQL 18" in error
    assert "move it away" in error and "pg_upgrade" in error
    assert _tree(data_dir) == before, "the old data directory was changed"


async def test_a_data_directory_the_server_cannot_start_in_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    (data_dir / "notes.txt").write_text("not a PostgreSQL data directory\n")

    code, output = await _command("migrate", "--data-dir", str(data_dir))

    assert code == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("zapjobs-sse: error:")]
    assert len(errors) == 1, output
    assert str(data_dir) in errors[0] and "initdb failed" in errors[0]


async def test_only_the_last_process_to_let_go_stops_the_embedded_server(
    private_postgres: PrivatePostgres,
) -> None:
    # This process runs the server (as `serve` would); enqueue and worker attach to it.
    data_dir = private_postgres.folder / "pgdata"
    connection = ["--data-dir", str(data_dir), "--jobs", JOBS]
    code, output = await _command("enqueue", "takes-a-second", *connection)
    assert code == 0, output
    assert "embedded_postgres_detached" in _events(output)
    assert "embedded_postgres_stopped" not in _events(output)

    writer = Writer(private_postgres.dsn)
    try:
        completed = asyncio.Event()

        async def wait_for_the_run() -> None:
            while not await writer.execute("SELECT 1 FROM zapjobs.runs WHERE status = 3"):
                await asyncio.sleep(0.1)  # status 3: Completed
            completed.set()

        waiting = asyncio.create_task(wait_for_the_run())
        code, output = await _command("worker", *connection, until_stopped=completed)
        waiting.cancel()
        assert completed.is_set(), output
        assert code == 0, output
        assert "embedded_postgres_detached" in _events(output)
        assert "embedded_postgres_stopped" not in _events(output)
        # The server is still there for its owner.
        assert await writer.execute("SELECT count(*) FROM zapjobs.runs") == [(1,)]
    finally:
        writer.close()

    # Alone with the data directory, a command starts the server and stops it again.
    await asyncio.to_thread(private_postgres.stop)
    code, output = await _command("migrate", "--data-dir", str(data_dir))
    assert code == 0, output
    events = _events(output)
    assert "embedded_postgres_stopped" in events and "embedded_postgres_detached" not in events
    assert not (data_dir / "postmaster.pid").exists()
