"""Fixtures: a real PostgreSQL (embedded, or ZAPJOBS_TEST_DSN), a fresh database per test,
and the real server on a loopback port."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import pytest
import structlog

from tests.support import (
    Writer,
    create_database,
    drop_database,
    test_dsn_from_env,
    with_database,
)
from zapjobs_sse.db.embedded import EmbeddedPostgres
from zapjobs_sse.db.listener import LISTENER_NAME
from zapjobs_sse.db.migrate import apply_migrations
from zapjobs_sse.db.replication import REPLICATION_NAME
from zapjobs_sse.server.run import serve_app
from zapjobs_sse.settings import Settings

TEMPLATE = f"zapjobs_sse_tmpl_{os.getpid()}"

# Both change feeds: parametrize a module's tests with `pytestmark = BOTH_FEEDS` (the
# `feed` fixture is used by database_dsn, the server fixture and private_postgres).
FEEDS = ("notify", "wal")
BOTH_FEEDS = pytest.mark.parametrize("feed", FEEDS)
# pg_stat_activity.application_name of each feed's connection.
FEED_CONNECTION = {"notify": LISTENER_NAME, "wal": REPLICATION_NAME}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs a command configures logging onto its own captured stdout, which is
    closed afterwards: give the next tests the configuration they started with."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser DSN of the PostgreSQL server the tests use."""
    configured = test_dsn_from_env()
    if configured:
        yield configured
        return
    # Not under pytest's private temp folder: the server runs as another user when the
    # tests run as root, and must be able to reach its data directory.
    folder = Path(tempfile.mkdtemp(prefix="zapjobs-sse-test-"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(folder / "pgdata")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def wal_level(admin_dsn: str) -> str:
    connection = psycopg2.connect(admin_dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW wal_level")
            row = cursor.fetchone()
            assert row is not None
            return str(row[0])
    finally:
        connection.close()


@pytest.fixture
def feed(wal_level: str) -> str:
    """The change feed of the test's server and database (parametrize it: BOTH_FEEDS)."""
    return "notify"


def _feed_usable(feed: str, wal_level: str) -> None:
    if feed == "wal" and wal_level != "logical":
        pytest.skip(f"--feed wal needs wal_level = logical; the test server has {wal_level}")


@pytest.fixture(scope="session")
def template_database(admin_dsn: str) -> Iterator[str]:
    """A database with every migration applied, copied for each test."""
    drop_database(admin_dsn, TEMPLATE)
    create_database(admin_dsn, TEMPLATE)
    asyncio.run(apply_migrations(with_database(admin_dsn, TEMPLATE)))
    yield TEMPLATE
    drop_database(admin_dsn, TEMPLATE)


@pytest.fixture
def empty_database_dsn(admin_dsn: str) -> Iterator[str]:
    """A fresh database without the schema."""
    name = f"zapjobs_sse_t_{uuid.uuid4().hex[:12]}"
    create_database(admin_dsn, name)
    yield with_database(admin_dsn, name)
    drop_database(admin_dsn, name)


@pytest.fixture
def database_dsn(
    admin_dsn: str, template_database: str, feed: str, wal_level: str
) -> Iterator[str]:
    """A fresh, migrated database of this test alone; for the WAL feed, without the
    notification triggers (as `migrate --no-triggers` leaves it)."""
    _feed_usable(feed, wal_level)
    name = f"zapjobs_sse_t_{uuid.uuid4().hex[:12]}"
    create_database(admin_dsn, name, template=template_database)
    dsn = with_database(admin_dsn, name)
    if feed == "wal":
        asyncio.run(apply_migrations(dsn, notify_triggers=False))
    yield dsn
    drop_database(admin_dsn, name)


@pytest.fixture
async def writer(database_dsn: str) -> AsyncIterator[Writer]:
    w = Writer(database_dsn)
    yield w
    w.close()


def make_settings(dsn: str, **overrides: Any) -> Settings:
    base = Settings(
        dsn=dsn,
        host="127.0.0.1",
        port=0,
        heartbeat=1.0,
        stats_interval=0.1,
        db_check_interval=1.0,
        db_check_timeout=2.0,
        reconnect_max_delay=1.0,
        log_format="console",
    )
    return dataclasses.replace(base, **overrides)


@dataclasses.dataclass
class RunningServer:
    url: str  # the dashboard base URL, ending with "/"
    settings: Settings

    def path(self, relative: str) -> str:
        return self.url + relative.lstrip("/")


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change the server's settings."""
    return {}


@pytest.fixture
async def server(
    database_dsn: str, server_settings: dict[str, Any], feed: str
) -> AsyncIterator[RunningServer]:
    settings = make_settings(database_dsn, feed=feed, **server_settings)
    async with serve_app(settings) as url:
        yield RunningServer(url, settings)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


async def start_command(*args: str) -> asyncio.subprocess.Process:
    """`zapjobs-sse ARGS --log-format json` as a child process with no database configured
    (no ZAPJOBS_* nor PG* variables), so that it uses the embedded PostgreSQL of its
    --data-dir; stdout and stderr share one pipe."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and not key.startswith("ZAPJOBS_")
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zapjobs_sse",
        *args,
        "--log-format",
        "json",
        cwd=repo_root(),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


@dataclasses.dataclass
class PrivatePostgres:
    """An embedded PostgreSQL of one test alone, which the test may stop and start."""

    folder: Path
    server: EmbeddedPostgres
    dsn: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = EmbeddedPostgres(self.folder / "pgdata")
        assert self.server.start() == self.dsn


@pytest.fixture
def private_postgres(feed: str) -> Iterator[PrivatePostgres]:
    folder = Path(tempfile.mkdtemp(prefix="zapjobs-sse-restart-"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(folder / "pgdata")
    dsn = server.start()
    asyncio.run(apply_migrations(dsn, notify_triggers=feed == "notify"))
    postgres = PrivatePostgres(folder, server, dsn)
    try:
        yield postgres
    finally:
        postgres.server.stop()
        shutil.rmtree(folder, ignore_errors=True)
