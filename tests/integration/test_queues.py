"""Queues: pending and running runs per queue and the age of the oldest pending run, in
the API, on the pages and live (QueuesUpdated, one query for every viewer)."""

from __future__ import annotations

import asyncio
import html
import re
import time
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.integration.test_pages import get_page
from tests.support import SSEClient, Writer, metric, sse_connect
from zapjobs_sse.server.http.times import utc_now

# A due AwaitingRetry run, a Scheduled one, and finished ones: none of them is pending.
NOT_PENDING = (1, 3, 4, 5, 6)


async def get_queues(http: aiohttp.ClientSession, server: RunningServer) -> list[dict[str, Any]]:
    async with http.get(server.path("api/queues")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        body: list[dict[str, Any]] = await response.json()
        return body


async def add_run(
    writer: Writer,
    queue: str,
    status: int,
    created_ago: float = 0.0,
    scheduled_ago: float | None = None,
    retry_ago: float | None = None,
) -> tuple[str, str | None]:
    """A run of `queue` created `created_ago` seconds ago (scheduled_at and next_retry_at
    likewise; negative: in the future). Returns its created_at and scheduled_at as the wire
    shows them."""
    rows = await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, queue, created_at, scheduled_at,"
        " next_retry_at)"
        " SELECT gen_random_uuid(), 'job', %(status)s, %(queue)s, now - %(created)s * s,"
        "  now - %(scheduled)s * s, now - %(retry)s * s"
        " FROM (SELECT date_trunc('milliseconds', now() AT TIME ZONE 'utc') AS now,"
        "  interval '1 second' AS s) AS clock"
        " RETURNING created_at, scheduled_at",
        {
            "status": status,
            "queue": queue,
            "created": created_ago,
            "scheduled": scheduled_ago,
            "retry": retry_ago,
        },
    )
    created, scheduled = rows[0]
    return wire(created), (wire(scheduled) if scheduled else None)


def wire(stamp: datetime) -> str:
    return stamp.isoformat(timespec="milliseconds") + "Z"


def age_of(since: str) -> float:
    then = datetime.fromisoformat(since.removesuffix("Z"))
    return (utc_now() - then) / timedelta(seconds=1)


async def queues_settled(
    http: aiohttp.ClientSession, server: RunningServer, done: Any
) -> list[dict[str, Any]]:
    """The API's queues once `done(queues)` holds (they follow the writes within a
    coalescing interval)."""
    for _ in range(50):
        queues = await get_queues(http, server)
        if done(queues):
            return queues
        await asyncio.sleep(0.1)
    raise AssertionError(f"the queues never settled: {queues}")


async def test_an_empty_database_has_no_queues(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    assert await get_queues(http, server) == []
    for path in ("queues", ""):
        page = await get_page(http, server.path(path))
        assert re.search(r'id="queues-body">\s*</tbody>', page)
        assert re.search(r'<p class="empty" id="queues-empty">No queues yet', page)


async def test_counts_and_ages_follow_status_and_due_time(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, queue) VALUES"
        " ('mailer', 'Mailer', 'mail'), ('idle', 'Idle', 'quiet'), ('idle-2', 'Idle', 'quiet')"
    )
    # mail: two pending (the older one is the latency), one running, every other status.
    oldest, _ = await add_run(writer, "mail", 0, created_ago=600)
    await add_run(writer, "mail", 0, created_ago=60)
    await add_run(writer, "mail", 2, created_ago=900)
    for status in NOT_PENDING:
        await add_run(writer, "mail", status, created_ago=7200, scheduled_ago=3600, retry_ago=60)
    # delayed: a pending run created long ago but due only since its (past) scheduled_at.
    _, due = await add_run(writer, "delayed", 0, created_ago=1800, scheduled_ago=240)
    await add_run(writer, "delayed", 0, created_ago=120)
    # early: a pending run whose scheduled_at is ahead: Pending is claimable now, so it
    # has been due since its creation.
    early, _ = await add_run(writer, "early", 0, created_ago=420, scheduled_ago=-3600)
    # not-due: only a Scheduled run (not due yet) and a retry (not pending): not listed.
    await add_run(writer, "not-due", 1, created_ago=60, scheduled_ago=-60)
    await add_run(writer, "not-due", 6, created_ago=60, retry_ago=-60)
    # orphan: no definition, one running run; history: only finished runs: not listed.
    await add_run(writer, "orphan", 2)
    await add_run(writer, "history", 3, created_ago=86400)

    queues = await queues_settled(http, server, lambda qs: len(qs) == 5)
    by_name = {queue["queue"]: queue for queue in queues}
    assert [queue["queue"] for queue in queues] == ["delayed", "early", "mail", "orphan", "quiet"]
    assert {name: (q["pending"], q["running"]) for name, q in by_name.items()} == {
        "delayed": (2, 0),
        "early": (1, 0),
        "mail": (2, 1),
        "orphan": (0, 1),
        "quiet": (0, 0),
    }
    assert by_name["mail"]["oldestPendingSince"] == oldest
    assert by_name["delayed"]["oldestPendingSince"] == due
    assert by_name["early"]["oldestPendingSince"] == early
    for name, expected in (("mail", 600), ("delayed", 240), ("early", 420)):
        age = by_name[name]["oldestPendingAgeSeconds"]
        assert expected - 1 <= age <= age_of(by_name[name]["oldestPendingSince"]) + 1, name
    for name in ("orphan", "quiet"):
        assert by_name[name]["oldestPendingAgeSeconds"] is None
        assert by_name[name]["oldestPendingSince"] is None
    assert set(by_name["mail"]) == {
        "queue", "pending", "running", "oldestPendingAgeSeconds", "oldestPendingSince"
    }  # fmt: skip

    # The same figures on both pages, server-rendered, each name linking to its pending runs.
    for path in ("queues", ""):
        page = await get_page(http, server.path(path))
        rows = dict(re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', page, re.S))
        assert list(rows) == ["delayed", "early", "mail", "orphan", "quiet"]
        mail = rows["mail"]
        assert 'href="/zapjobs/runs?queue=mail&amp;status=Pending"' in mail
        assert re.search(r'class="count pending">2<', mail)
        assert re.search(r'class="count running">1<', mail)
        assert f'<time class="age" datetime="{oldest}"' in mail
        assert re.search(r">10 min \d+ s</time>", mail)
        assert '<time class="age" datetime=""></time>' in rows["quiet"]


async def test_the_age_of_a_queue_keeps_counting_between_refreshes(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await add_run(writer, "mail", 0, created_ago=30)
    first = (await queues_settled(http, server, lambda qs: len(qs) == 1))[0]
    await asyncio.sleep(1.5)  # nothing changes: the queues are not read again meanwhile
    second = (await get_queues(http, server))[0]
    assert second["oldestPendingSince"] == first["oldestPendingSince"]
    elapsed = second["oldestPendingAgeSeconds"] - first["oldestPendingAgeSeconds"]
    assert 1.4 <= elapsed <= 2.5


async def test_a_queue_name_is_text_and_its_link_is_encoded(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    name = "<b>a&b c</b>"
    await add_run(writer, name, 0)
    await queues_settled(http, server, lambda qs: len(qs) == 1)
    page = await get_page(http, server.path("queues"))
    assert name not in page
    assert f">{html.escape(name)}</a>" in page
    assert "runs?queue=%3Cb%3Ea%26b+c%3C%2Fb%3E&amp;status=Pending" in page


def queues_of(client: SSEClient) -> list[list[dict[str, Any]]]:
    return [event.json()["queues"] for event in client.named("QueuesUpdated")]


async def test_queues_updated_arrives_when_a_run_is_added_and_started(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, queue)"
        " VALUES ('mailer', 'Mailer', 'mail')"
    )
    await queues_settled(http, server, lambda qs: len(qs) == 1)
    async with (
        sse_connect(http, server.path("events?topics=queues")) as client,
        sse_connect(http, server.path("events")) as default_stream,
    ):
        # On connect: the current queues, nothing pending.
        await client.wait_named("QueuesUpdated")
        empty = {"queue": "mail", "pending": 0, "running": 0, "oldestPendingSince": None}
        assert queues_of(client) == [[empty]]
        assert client.events[0].name == "QueuesUpdated"

        created, _ = await add_run(writer, "mail", 0, created_ago=5)
        await client.wait_for(lambda _: queues_of(client)[-1][0]["pending"] == 1)
        assert queues_of(client)[-1] == [empty | {"pending": 1, "oldestPendingSince": created}]

        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE queue = 'mail'")
        await client.wait_for(lambda _: queues_of(client)[-1][0]["running"] == 1)
        assert queues_of(client)[-1] == [empty | {"running": 1}]
        await default_stream.wait_named("JobRunUpdated", 2)
    # The ages are not in the event (they change every instant); the queues' topic is
    # asked for: a stream that names no topics does not get it.
    assert default_stream.named("QueuesUpdated") == []
    assert default_stream.named("StatsUpdated")


@pytest.mark.parametrize("server_settings", [{"stats_interval": 0.5}])
async def test_one_query_serves_every_viewer(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer, database_dsn: str
) -> None:
    viewers = 20
    refreshes = server.path("metrics")
    clients = [sse_connect(http, server.path("events?topics=queues")) for _ in range(viewers)]
    streams = [await client.__aenter__() for client in clients]
    try:
        for stream in streams:
            await stream.wait_named("QueuesUpdated")
        before = await metric(http, refreshes, "zapjobs_sse_stats_refreshes_total")
        started = time.monotonic()
        for _ in range(500):
            await add_run(writer, "mail", 0)
        burst = time.monotonic() - started
        for stream in streams:
            await stream.wait_for(lambda _, s=stream: queues_of(s)[-1][0]["pending"] == 500)
        # A refresh per interval while the burst lasted (and the final one), for 20 viewers
        # as for one: each refresh is one query for all of them.
        made = await metric(http, refreshes, "zapjobs_sse_stats_refreshes_total") - before
        assert made <= burst / 0.5 + 3, f"{made} refreshes for a {burst:.1f} s burst"
        updates = [len(stream.named("QueuesUpdated")) for stream in streams]
        assert max(updates) <= made + 1

        # Each viewer polling the API (the pages' fallback) adds no query either: the
        # database counts the transactions of every session.
        committed = await quiet_transactions(writer)
        await asyncio.gather(*(get_queues(http, server) for _ in range(5 * viewers)))
        assert await transactions(writer) - committed < 2 * viewers
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)


async def quiet_transactions(writer: Writer) -> int:
    """Transactions committed so far, once the server has finished with the burst (the
    bridge reads the last runs it was told of a moment after the viewers saw them)."""
    count = await transactions(writer)
    for _ in range(20):
        previous, count = count, await transactions(writer)
        if count - previous < 10:
            return count
    raise AssertionError("the database never went quiet")


async def transactions(writer: Writer) -> int:
    """Transactions committed in this database so far, once the sessions have reported."""
    await asyncio.sleep(1.5)  # a busy session reports its counts at most once a second
    rows = await writer.execute(
        "SELECT pg_stat_clear_snapshot(),"
        " (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"
    )
    return int(rows[0][1])
