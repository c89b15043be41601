"""The actions with the reference executor: what they write, a worker picks up and stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.integration.test_executor import FAST, eventually, finished, run_row, working
from zapjobs_sse.db import Database
from zapjobs_sse.executor import JobContext, JobRegistry

RUNNING, COMPLETED, CANCELLED = 2, 3, 5


@pytest.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = await Database.open(database_dsn, size=2)
    yield db
    await db.close()


async def test_a_triggered_run_is_picked_up_and_completes(
    server: RunningServer, http: aiohttp.ClientSession, database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()

    @registry.job("greet", queue="greetings")
    async def greet(ctx: JobContext, data: Any) -> Any:
        return {"hello": data["name"]}

    await registry.register(database)
    async with working(database_dsn, registry):
        async with http.post(
            server.path("api/jobs/greet/trigger"), json={"input": {"name": "ada"}}
        ) as response:
            assert response.status == 201
            run = await response.json()
        row = await finished(database, run["id"])
    assert row["status"] == COMPLETED and row["output_json"] == '{"hello": "ada"}'
    assert row["queue"] == "greetings" and row["trigger_type"] == 0


async def test_a_running_run_cancelled_through_the_api_stops(
    server: RunningServer, http: aiohttp.ClientSession, database_dsn: str, database: Database
) -> None:
    registry = JobRegistry()
    stopped = asyncio.Event()

    @registry.job("long")
    async def long(ctx: JobContext, data: Any) -> Any:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise

    await registry.register(database)
    async with working(database_dsn, registry) as worker:
        async with http.post(server.path("api/jobs/long/trigger")) as response:
            run_id = (await response.json())["id"]

        async def running() -> bool:
            return bool((await run_row(database, run_id))["status"] == RUNNING)

        await eventually(running, what="the run to start")
        async with http.post(server.path(f"api/runs/{run_id}/cancel")) as response:
            assert response.status == 200
        # Within the worker's cancel-check interval (and the job's unwinding).
        async with asyncio.timeout(FAST.cancel_check_interval + 2):
            await stopped.wait()

        async def let_go() -> bool:
            return not worker.running

        await eventually(let_go, what="the worker to let go")
        row = await run_row(database, run_id)
    assert row["status"] == CANCELLED and row["duration_ms"] is not None
