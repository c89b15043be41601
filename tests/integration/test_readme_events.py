"""README.md's table of events names exactly the fields each event carries on a real stream."""

from __future__ import annotations

import re

import aiohttp

from tests.conftest import RunningServer, repo_root
from tests.integration.test_actions import define, post
from tests.support import Writer, sse_connect
from zapjobs_sse.server.live.wire import camel

# The table cells that describe a payload in words rather than by its fields.
WHOLE_RUN = ("the whole run, every column in camelCase", "the whole run")


def readme_event_fields() -> dict[str, str]:
    """Event name -> its payload cell, from the table of README.md's "Events" section."""
    text = (repo_root() / "README.md").read_text("utf-8")
    section = text.split("\n## Events\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| .*\|$", section, re.MULTILINE)
    return dict(rows)


def listed(cell: str) -> set[str]:
    """The fields of a cell such as "`id, runId, level` (`a`, `b`)": its first code span."""
    match = re.match(r"`([^`]*)`", cell)
    assert match is not None, cell
    return {name.strip() for name in match[1].split(",")}


def queue_fields(cell: str) -> set[str]:
    """The fields of each queue of QueuesUpdated: the cell's second code span."""
    spans = re.findall(r"`([^`]*)`", cell)
    return {name.strip() for name in spans[1].split(",")}


async def test_readme_events_table_names_exactly_the_fields_of_each_event(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    table = readme_event_fields()
    assert set(table) == {
        "StatsUpdated", "JobRunUpdated", "RunDetailUpdated", "JobTypeRunUpdated", "LogAdded",
        "WorkerUpdated", "resync", "auth_expired", "reconnect", "ActionPerformed",
        "QueuesUpdated",
    }  # fmt: skip
    run_id = await writer.insert_run("email")
    columns = await writer.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'zapjobs' AND table_name = 'runs'"
    )
    whole_run = {camel(name) for (name,) in columns}
    query = f"events?run={run_id}&job_type=email"
    async with sse_connect(
        http, server.path(query), headers={"Last-Event-ID": "no-such-id"}
    ) as client:
        await client.wait_named("StatsUpdated")
        await client.wait_named("resync")
        await writer.execute("UPDATE zapjobs.runs SET status = 2 WHERE id = %s", (run_id,))
        await writer.insert_logs(run_id, ["a line"])
        await writer.execute(
            "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
            " VALUES (gen_random_uuid(), 'w-1', 'host-a', 42, now() AT TIME ZONE 'utc')"
        )
        for name in ("JobRunUpdated", "RunDetailUpdated", "JobTypeRunUpdated", "LogAdded"):
            await client.wait_named(name)
        await client.wait_named("WorkerUpdated")
    await define(writer)
    async with sse_connect(http, server.path("events?topics=activity,queues")) as activity:
        await activity.wait_for(
            lambda es: any(e.name == "QueuesUpdated" and e.json()["queues"] for e in es)
        )
        await post(http, server.path("api/jobs/email/trigger"), {}, 201)
        await activity.wait_named("ActionPerformed")
    client.events += activity.events
    for name, cell in table.items():
        if name == "auth_expired":
            continue  # test_auth: its payload, on a stream whose token is removed
        if name == "reconnect":
            assert listed(cell) == {"reason"}  # test_stream_clients: at shutdown
            continue
        if name == "QueuesUpdated":
            queue = next(e.json()["queues"] for e in client.named(name) if e.json()["queues"])[0]
            assert listed(cell) == {"queues"} and set(queue) == queue_fields(cell)
            continue
        payload = set(client.named(name)[0].json())
        expected = whole_run if cell in WHOLE_RUN else listed(cell)
        assert payload == expected, (name, payload ^ expected)
