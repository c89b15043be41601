"""Nothing we install can make an executor's statement fail or change what it wrote, and
the feed reading those writes (notify or wal) goes on through every one of them."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import psycopg2
import pytest
import structlog.testing

from tests.conftest import FEEDS, RunningServer
from tests.support import Writer, metric, sse_connect

RUN_TEXT_COLUMNS = (
    "job_type_id",
    "triggered_by",
    "worker_id",
    "queue",
    "progress_message",
    "error_message",
    "stack_trace",
    "error_type",
    "input_json",
    "output_json",
    "metadata_json",
)
VARCHAR_LIMITS = {
    "job_type_id": 255,
    "triggered_by": 255,
    "worker_id": 255,
    "queue": 100,
    "error_type": 500,
}


def multibyte(size_bytes: int) -> str:
    """Text of exactly size_bytes UTF-8 bytes, mostly 3- and 4-byte characters."""
    text = "€😀" * (size_bytes // 7)
    return text + "a" * (size_bytes - len(text.encode()))


async def feed_went_on(server: RunningServer) -> None:
    """The feed read every write above without losing its connection."""
    async with aiohttp.ClientSession() as http:
        assert (
            await metric(http, server.path("metrics"), "zapjobs_sse_bridge_reconnects_total") == 0
        )


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("size", [7999, 8000, 8001, 1_000_000])
async def test_boundary_payloads_in_every_run_text_column(
    server: RunningServer, writer: Writer, size: int
) -> None:
    run_id = str(uuid.uuid4())
    values = {
        column: multibyte(size)[: VARCHAR_LIMITS[column]]
        if column in VARCHAR_LIMITS
        else multibyte(size)
        for column in RUN_TEXT_COLUMNS
    }
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    await writer.execute(
        f"INSERT INTO zapjobs.runs (id, {columns}) VALUES (%s, {placeholders})",
        (run_id, *values.values()),
    )
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = %s, status = 4 WHERE id = %s",
        (multibyte(size) + "!", run_id),
    )
    stored = await writer.execute(
        f"SELECT status, {columns} FROM zapjobs.runs WHERE id = %s", (run_id,)
    )
    expected = {**values, "error_message": multibyte(size) + "!"}
    assert stored == [(4, *expected.values())]  # every column exactly as written
    await feed_went_on(server)


@pytest.mark.parametrize("feed", FEEDS)
async def test_huge_and_multibyte_log_lines_are_stored_unchanged(
    server: RunningServer, writer: Writer
) -> None:
    run_id = await writer.insert_run()
    lines = [multibyte(1_000_000), multibyte(8001), "naïve — 日本語 — 😀", ""]
    await writer.insert_logs(run_id, lines)
    stored = await writer.execute(
        "SELECT message FROM zapjobs.logs WHERE run_id = %s ORDER BY timestamp, id", (run_id,)
    )
    assert [row[0] for row in stored] == lines
    await feed_went_on(server)


@pytest.mark.parametrize("feed", FEEDS)
async def test_nulls_in_every_nullable_column_and_unknown_enums(
    server: RunningServer, writer: Writer
) -> None:
    run_id = str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, trigger_type) VALUES (%s, 'x', 99, -7)",
        (run_id,),
    )
    await writer.execute("UPDATE zapjobs.runs SET status = -1 WHERE id = %s", (run_id,))
    await writer.execute(
        "INSERT INTO zapjobs.logs (id, run_id, level, message) VALUES (%s, %s, 42, 'x')",
        (str(uuid.uuid4()), run_id),
    )
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (worker_id, hostname, process_id, current_job_type,"
        " current_run_id) VALUES (%s, 'h', 1, NULL, NULL)",
        (multibyte(255)[:255],),
    )
    await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, error_message,"
        " attempt_count, status) VALUES (%s, %s, 'x', '', 3, 17)",
        (str(uuid.uuid4()), run_id),
    )
    stored = await writer.execute("SELECT status FROM zapjobs.runs WHERE id = %s", (run_id,))
    assert stored == [(-1,)]
    await feed_went_on(server)


@pytest.mark.parametrize("feed", FEEDS)
async def test_unknown_status_streams_as_unknown_name(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=runs")) as client:
        run_id = await writer.insert_run(status=99)
        events = await client.wait_named("JobRunUpdated")
        assert events[0].json() == events[0].json() | {"id": run_id, "status": "Unknown(99)"}


async def test_thousand_row_log_insert_costs_one_notification(writer: Writer) -> None:
    run_id = await writer.insert_run()
    listener = psycopg2.connect(writer.dsn)
    listener.autocommit = True
    try:
        with listener.cursor() as cursor:
            cursor.execute("LISTEN zapjobs_sse")
        await writer.insert_logs(run_id, [f"line {i}" for i in range(1000)])
        await writer.execute("NOTIFY zapjobs_sse, 'sentinel'")  # delivered in commit order
        for _ in range(100):
            listener.poll()
            if any(n.payload == "sentinel" for n in listener.notifies):
                break
            await asyncio.sleep(0.05)
        *batch, sentinel = listener.notifies
        assert sentinel.payload == "sentinel"
        assert len(batch) == 1
        assert all(len(n.payload.encode()) < 8000 for n in batch)
    finally:
        listener.close()


async def test_notifications_switched_off_and_on_without_a_migration(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    async with sse_connect(http, server.path("events?topics=runs")) as client:
        await writer.execute("SET zapjobs_sse.notify = off")
        silent = await writer.insert_run("silent")
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (silent,))
        await writer.insert_logs(silent, ["quiet"])
        await writer.execute("SET zapjobs_sse.notify = on")
        loud = await writer.insert_run("loud")
        # Commits are delivered in order: had the silent ones notified, their events
        # would have come before the loud one's.
        events = await client.wait_named("JobRunUpdated")
        assert [e.json()["id"] for e in events] == [loud]
    stored = await writer.execute("SELECT status FROM zapjobs.runs WHERE id = %s", (silent,))
    assert stored == [(2,)]


@pytest.mark.parametrize("server_settings", [{"notify_queue_threshold": 0.0005}])
async def test_filling_notify_queue_is_warned_about_and_makes_the_server_not_ready(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    # A listener stuck in an open transaction keeps PostgreSQL from freeing the queue.
    stuck = psycopg2.connect(writer.dsn)
    try:
        with stuck.cursor() as cursor:
            cursor.execute("LISTEN somebody_elses_channel")
        stuck.commit()
        with stuck.cursor() as cursor:
            cursor.execute("SELECT 1")  # opens the transaction that holds the queue
        with structlog.testing.capture_logs() as logs:
            await writer.execute(
                "SELECT pg_notify('somebody_elses_channel', repeat('x', 7900) || g)"
                " FROM generate_series(1, 1500) g"
            )
            deadline = asyncio.get_running_loop().time() + 10
            while not any(entry["event"] == "notify_queue_filling" for entry in logs):
                assert asyncio.get_running_loop().time() < deadline, "no warning was logged"
                await asyncio.sleep(0.2)
        async with http.get(server.path("ready")) as response:
            body = await response.json()
            assert response.status == 503
            assert body["checks"]["notifyQueue"] == "above_threshold"
    finally:
        stuck.close()
