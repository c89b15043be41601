"""What only the WAL feed has: its slot, the reads it saves, its checks at start, and the
databases it runs on without the notification triggers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg2
import pytest

from tests.conftest import FEED_CONNECTION, FEEDS, PrivatePostgres, RunningServer, make_settings
from tests.server_process import free_port
from tests.support import SSEClient, Writer, metric, sse_connect
from zapjobs_sse.db.migrate import NOTIFY_TRIGGERS, apply_migrations
from zapjobs_sse.db.replication import TRANSACTION_ROWS
from zapjobs_sse.server.run import serve_app

FAST = {"db_check_interval": 1.0, "db_check_timeout": 1.0, "reconnect_max_delay": 0.5}


def _query(dsn: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def _slots(dsn: str) -> list[tuple[object, ...]]:
    return _query(
        dsn,
        "SELECT slot_name, temporary FROM pg_replication_slots"
        " WHERE database = current_database() ORDER BY slot_name",
    )


async def _slots_become(dsn: str, count: int, within: float = 5.0) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + within
    while True:
        slots = await asyncio.to_thread(_slots, dsn)
        if len(slots) == count or time.monotonic() > deadline:
            return slots
        await asyncio.sleep(0.05)


async def _resynced(client: SSEClient, count: int) -> None:
    await client.wait_named("resync", count, timeout=20)


@pytest.mark.parametrize("feed", ["wal"])
async def test_a_terminated_walsender_or_a_restarted_primary_leaves_no_slot_behind(
    private_postgres: PrivatePostgres, http: aiohttp.ClientSession
) -> None:
    dsn = private_postgres.dsn
    async with (
        serve_app(make_settings(dsn, feed="wal", **FAST)) as url,
        sse_connect(http, url + "events?topics=runs") as client,
    ):
        first = await _slots_become(dsn, 1)
        assert len(first) == 1 and first[0][1] is True, first  # one TEMPORARY slot
        _query(
            dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (FEED_CONNECTION["wal"],),
        )
        await _resynced(client, 1)
        second = await _slots_become(dsn, 1)
        assert len(second) == 1 and second[0][0] != first[0][0], (first, second)
        await asyncio.to_thread(private_postgres.stop)
        await asyncio.to_thread(private_postgres.start)
        await _resynced(client, 2)
        third = await _slots_become(dsn, 1)
        assert len(third) == 1 and third[0][0] not in (first[0][0], second[0][0]), third
        # The feed reads from the new slot.
        writer = Writer(dsn)
        try:
            run_id = await writer.insert_run()
        finally:
            writer.close()
        await client.wait_for(lambda es: any(run_id in e.data for e in es), timeout=10)
    assert await _slots_become(dsn, 0) == [], "the server left its slot behind"


@pytest.mark.parametrize("feed", FEEDS)
async def test_statements_per_change(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer, feed: str
) -> None:
    """The WAL feed publishes runs, log lines and heartbeats from the changes themselves;
    the notify feed reads each one by key."""
    metrics = server.path("metrics")
    run_id = await writer.insert_run("email", status=2)
    async with sse_connect(http, server.path(f"events?run={run_id}")) as client:
        await client.wait_named("StatsUpdated")
        await asyncio.sleep(0.3)  # the stream's start (its first read of the run's log)
        reads = await metric(http, metrics, "zapjobs_sse_bridge_reads_total")
        changes = await metric(http, metrics, "zapjobs_sse_notifications_received_total")
        for progress in range(1, 21):
            await writer.execute(
                "UPDATE zapjobs.runs SET progress = %s WHERE id = %s", (progress, run_id)
            )
            await writer.insert_logs(run_id, [f"line {progress}"])
            await writer.execute(
                "INSERT INTO zapjobs.heartbeats (worker_id, hostname, process_id, timestamp)"
                " VALUES ('w-1', 'h', 1, now() AT TIME ZONE 'utc') ON CONFLICT (worker_id)"
                " DO UPDATE SET timestamp = now() AT TIME ZONE 'utc'"
            )
        await client.wait_for(
            lambda es: (
                len([e for e in es if e.name == "LogAdded"]) == 20
                and any(e.name == "RunDetailUpdated" and e.json()["progress"] == 20 for e in es)
            ),
            timeout=15,
        )
        await asyncio.sleep(0.5)
        read = await metric(http, metrics, "zapjobs_sse_bridge_reads_total") - reads
        received = await metric(http, metrics, "zapjobs_sse_notifications_received_total")
        received -= changes
    print(
        f"{feed}: 60 changes (20 run updates, 20 log lines, 20 heartbeats) in 60 commits:"
        f" {received:.0f} received, {read:.0f} statements, {read / 60:.2f} per change"
    )
    if feed == "wal":
        assert received == 60 and read == 0
    else:
        assert read > 0


@pytest.mark.parametrize("feed", ["wal"])
async def test_a_toasted_value_an_update_left_unchanged_is_read_by_key(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    big = os.urandom(100_000).hex()  # stored out of line: the UPDATE's change omits it
    run_id = await writer.insert_run("email")
    await writer.execute("UPDATE zapjobs.runs SET input_json = %s WHERE id = %s", (big, run_id))
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=")) as client:
        await asyncio.sleep(0.3)
        reads = await metric(http, server.path("metrics"), "zapjobs_sse_bridge_reads_total")
        await writer.execute("UPDATE zapjobs.runs SET status = 3 WHERE id = %s", (run_id,))
        events = await client.wait_for(
            lambda es: any(e.name == "RunDetailUpdated" and '"Completed"' in e.data for e in es)
        )
        completed = [e.json() for e in events if '"Completed"' in e.data]
        assert completed[0]["inputJson"] == big
        after = await metric(http, server.path("metrics"), "zapjobs_sse_bridge_reads_total")
        assert after - reads == 1  # the run, read by key


def _serve_wal(dsn: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "zapjobs_sse", "serve", "--feed", "wal", "--dsn", dsn),
            *("--port", str(free_port()), "--log-format", "json", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("zapjobs-sse: error: --feed wal: ")
    return errors[0]


@pytest.mark.parametrize("feed", ["wal"])
def test_serve_refuses_a_database_without_the_publication_naming_the_fix(
    database_dsn: str,
) -> None:
    _query(database_dsn, "DROP PUBLICATION zapjobs_sse")
    error = _one_error_line(_serve_wal(database_dsn))
    assert "the publication zapjobs_sse is missing" in error
    assert "CREATE PUBLICATION zapjobs_sse FOR TABLE" in error


@pytest.mark.parametrize("feed", ["wal"])
def test_serve_refuses_a_role_that_may_not_replicate_naming_the_fix(database_dsn: str) -> None:
    role = f"zapjobs_sse_viewer_{os.getpid()}"
    _query(database_dsn, f"DROP ROLE IF EXISTS {role}")
    _query(database_dsn, f"CREATE ROLE {role} LOGIN")
    try:
        database = urlsplit(database_dsn).path.lstrip("/")
        _query(database_dsn, f"GRANT CREATE ON DATABASE {database} TO {role}")
        _query(database_dsn, f"GRANT ALL ON SCHEMA zapjobs TO {role}")
        _query(database_dsn, f"GRANT ALL ON ALL TABLES IN SCHEMA zapjobs TO {role}")
        parts = urlsplit(database_dsn)
        dsn = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))
        error = _one_error_line(_serve_wal(dsn))
        assert f"ALTER ROLE {role} WITH REPLICATION" in error
        assert "rds_replication" in error
    finally:
        _query(database_dsn, f"DROP OWNED BY {role}")
        _query(database_dsn, f"DROP ROLE {role}")


def _notify_triggers(dsn: str) -> int:
    rows = _query(
        dsn,
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'sse\\_%%'",
    )
    return int(str(rows[0][0]))


async def test_migrate_without_triggers_removes_ours_and_migrate_puts_them_back(
    database_dsn: str, writer: Writer
) -> None:
    assert _notify_triggers(database_dsn) == NOTIFY_TRIGGERS
    await apply_migrations(database_dsn, notify_triggers=False)
    assert _notify_triggers(database_dsn) == 0
    await writer.insert_run()  # a writer on the WAL-fed database: no trigger runs
    await apply_migrations(database_dsn, notify_triggers=None)  # serve --feed wal
    assert _notify_triggers(database_dsn) == 0
    await apply_migrations(database_dsn)
    assert _notify_triggers(database_dsn) == NOTIFY_TRIGGERS


def test_migrate_no_triggers_on_the_command_line(database_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zapjobs_sse", "migrate", "--no-triggers", "--dsn", database_dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert _notify_triggers(database_dsn) == 0


@pytest.mark.parametrize("feed", ["wal"])
async def test_a_transaction_too_large_to_hold_streams_each_line_once_in_order(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    """Past TRANSACTION_ROWS changes, the feed keeps keys alone and the lines are read."""
    count = TRANSACTION_ROWS + 2000
    run_id = await writer.insert_run("email", status=2)
    async with sse_connect(http, server.path(f"events?run={run_id}&topics=")) as client:
        await asyncio.sleep(0.3)
        await writer.insert_logs(run_id, [f"line {n}" for n in range(count)])
        await client.wait_named("LogAdded", count, timeout=60)
        await asyncio.sleep(0.3)
        lines = [e.json()["message"] for e in client.named("LogAdded")]
    assert lines == [f"line {n}" for n in range(count)]
