"""Test support: a real PostgreSQL per test, an executor-like writer, an SSE client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg2
import psycopg2.extensions

__all__ = [
    "SSEClient",
    "SSEEvent",
    "Writer",
    "create_database",
    "drop_database",
    "metric",
    "with_database",
]


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + name))
    return f"{dsn} dbname={name}"


def _admin(dsn: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


def create_database(admin_dsn: str, name: str, template: str | None = None) -> None:
    connection = _admin(admin_dsn)
    try:
        with connection.cursor() as cursor:
            suffix = f" TEMPLATE {template}" if template else ""
            cursor.execute(f"CREATE DATABASE {name}{suffix}")
    finally:
        connection.close()


def drop_database(admin_dsn: str, name: str) -> None:
    connection = _admin(admin_dsn)
    try:
        with connection.cursor() as cursor:
            # A server's walsender ends a moment after the server closed its connection
            # (its temporary slot with it); WITH (FORCE) does not wait for it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_replication_slots WHERE database = %s", (name,)
                )
                if cursor.fetchone() == (0,):
                    break
                time.sleep(0.05)
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        connection.close()


class Writer:
    """Changes the database the way an executor does: plain SQL, autocommit, own connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._connection = psycopg2.connect(dsn)
        self._connection.autocommit = True
        self._lock = asyncio.Lock()

    def _run(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    async def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._lock:
            return await asyncio.to_thread(self._run, sql, params)

    async def insert_run(
        self, job_type: str = "email", status: int = 0, run_id: str | None = None
    ) -> str:
        run_id = run_id or str(uuid.uuid4())
        await self.execute(
            "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at)"
            " VALUES (%s, %s, %s, now() AT TIME ZONE 'utc')",
            (run_id, job_type, status),
        )
        return run_id

    async def insert_logs(self, run_id: str, messages: list[str], level: int = 2) -> None:
        """One multi-row INSERT; each line gets its own microsecond, as executors do."""
        await self.execute(
            "INSERT INTO zapjobs.logs (id, run_id, level, message, timestamp)"
            " SELECT gen_random_uuid(), %s, %s, m.message,"
            " clock_timestamp() AT TIME ZONE 'utc' + (m.n * interval '1 microsecond')"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS m(message, n)",
            (run_id, level, messages),
        )

    def close(self) -> None:
        self._connection.close()


@dataclass(slots=True)
class SSEEvent:
    name: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEClient:
    """A minimal EventSource for tests: reads frames as they come, keeps every event."""

    response: aiohttp.ClientResponse
    events: list[SSEEvent] = field(default_factory=list)
    comments: int = 0
    retry: int | None = None
    last_id: str | None = None
    _task: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def start(self) -> SSEClient:
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        name, event_id = "message", None
        data: list[str] = []
        try:
            async for raw in self.response.content:
                line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
                if not line:
                    if data:
                        self.events.append(SSEEvent(name, "\n".join(data), event_id))
                        if event_id is not None:
                            self.last_id = event_id
                        self._arrived.set()
                    name, event_id, data = "message", None, []
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    self._arrived.set()
                    continue
                key, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
                elif key == "id":
                    event_id = value
                elif key == "retry":
                    self.retry = int(value)
        except (aiohttp.ClientError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self.closed = True
            self._arrived.set()

    def named(self, name: str) -> list[SSEEvent]:
        return [event for event in self.events if event.name == name]

    async def wait_for(
        self, predicate: Any, timeout: float = 5.0, what: str = "an event"
    ) -> list[SSEEvent]:
        """Wait until predicate(events) is truthy; return the events so far."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.closed and not predicate(self.events)):
                names = [event.name for event in self.events]
                raise AssertionError(f"timed out waiting for {what}; got {names}")
            self._arrived.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        return self.events

    async def wait_named(self, name: str, count: int = 1, timeout: float = 5.0) -> list[SSEEvent]:
        await self.wait_for(
            lambda events: len([e for e in events if e.name == name]) >= count,
            timeout,
            f"{count} x {name}",
        )
        return self.named(name)

    async def close(self) -> None:
        self.response.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@asynccontextmanager
async def sse_connect(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SSEClient]:
    response = await session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None))
    assert response.status == 200, f"{url}: {response.status} {await response.text()}"
    client = SSEClient(response).start()
    try:
        yield client
    finally:
        await client.close()


async def metric(session: aiohttp.ClientSession, metrics_url: str, name: str) -> float:
    """One sample of the server's /metrics (a metric without labels)."""
    async with session.get(metrics_url) as response:
        assert response.status == 200
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_dsn_from_env() -> str | None:
    return os.environ.get("ZAPJOBS_TEST_DSN") or None
