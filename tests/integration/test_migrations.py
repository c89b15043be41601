"""Migrations: idempotent, safe in parallel, harmless to a database ZapJobs already created."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib import resources

import psycopg2
import pytest

from tests.support import create_database, drop_database, with_database
from zapjobs_sse.db.migrate import apply_migrations, load_migrations

# The schema exactly as the .NET ZapJobs storage creates it (an older version: no
# dead_letter table, no prevent_overlapping column).
ZAPJOBS_SCRIPT = """
CREATE SCHEMA IF NOT EXISTS zapjobs;
CREATE TABLE zapjobs.definitions (
    job_type_id VARCHAR(255) PRIMARY KEY, display_name VARCHAR(255) NOT NULL,
    description TEXT, queue VARCHAR(100) NOT NULL DEFAULT 'default',
    schedule_type INTEGER NOT NULL DEFAULT 0, interval_minutes INTEGER,
    cron_expression VARCHAR(100), time_zone_id VARCHAR(100),
    is_enabled BOOLEAN NOT NULL DEFAULT TRUE, max_retries INTEGER NOT NULL DEFAULT 3,
    timeout_seconds INTEGER NOT NULL DEFAULT 3600, max_concurrency INTEGER NOT NULL DEFAULT 1,
    last_run_at TIMESTAMP, next_run_at TIMESTAMP, last_run_status INTEGER, config_json TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(), updated_at TIMESTAMP NOT NULL DEFAULT NOW());
CREATE TABLE zapjobs.runs (
    id UUID PRIMARY KEY, job_type_id VARCHAR(255) NOT NULL, status INTEGER NOT NULL DEFAULT 0,
    trigger_type INTEGER NOT NULL DEFAULT 0, triggered_by VARCHAR(255), worker_id VARCHAR(255),
    queue VARCHAR(100) NOT NULL DEFAULT 'default', created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    scheduled_at TIMESTAMP, started_at TIMESTAMP, completed_at TIMESTAMP, duration_ms INTEGER,
    progress INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT, items_processed INTEGER NOT NULL DEFAULT 0,
    items_succeeded INTEGER NOT NULL DEFAULT 0, items_failed INTEGER NOT NULL DEFAULT 0,
    attempt_number INTEGER NOT NULL DEFAULT 1, next_retry_at TIMESTAMP, error_message TEXT,
    stack_trace TEXT, error_type VARCHAR(500), input_json TEXT, output_json TEXT,
    metadata_json TEXT);
CREATE INDEX idx_runs_status ON zapjobs.runs(status);
CREATE TABLE zapjobs.logs (
    id UUID PRIMARY KEY, run_id UUID NOT NULL, level INTEGER NOT NULL DEFAULT 2,
    message TEXT NOT NULL, category VARCHAR(100), context_json TEXT, duration_ms INTEGER,
    exception TEXT, timestamp TIMESTAMP NOT NULL DEFAULT NOW());
CREATE INDEX idx_logs_run_id ON zapjobs.logs(run_id);
CREATE TABLE zapjobs.heartbeats (
    id UUID, worker_id VARCHAR(255) PRIMARY KEY, hostname VARCHAR(255) NOT NULL,
    process_id INTEGER NOT NULL, current_job_type VARCHAR(255), current_run_id UUID,
    timestamp TIMESTAMP NOT NULL DEFAULT NOW(), queues TEXT[] NOT NULL DEFAULT ARRAY['default'],
    jobs_processed INTEGER NOT NULL DEFAULT 0, jobs_failed INTEGER NOT NULL DEFAULT 0,
    is_shutting_down BOOLEAN NOT NULL DEFAULT FALSE,
    started_at TIMESTAMP NOT NULL DEFAULT NOW());
CREATE TABLE zapjobs.continuations (
    id UUID PRIMARY KEY, parent_run_id UUID NOT NULL,
    continuation_job_type_id VARCHAR(255) NOT NULL, condition INTEGER NOT NULL DEFAULT 0,
    input_json TEXT, pass_parent_output BOOLEAN NOT NULL DEFAULT FALSE, queue VARCHAR(100),
    status INTEGER NOT NULL DEFAULT 0, continuation_run_id UUID,
    created_at TIMESTAMP NOT NULL DEFAULT NOW());
INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES ('email', 'Send e-mail');
INSERT INTO zapjobs.runs (id, job_type_id, status, progress_message)
    SELECT gen_random_uuid(), 'email', g % 5, 'row ' || g FROM generate_series(1, 500) g;
INSERT INTO zapjobs.logs (id, run_id, message)
    SELECT gen_random_uuid(), (SELECT id FROM zapjobs.runs LIMIT 1), 'line ' || g
    FROM generate_series(1, 300) g;
INSERT INTO zapjobs.heartbeats (worker_id, hostname, process_id) VALUES ('w', 'h', 1);
"""

SNAPSHOT = """
SELECT
  (SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM zapjobs.runs r),
  (SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM zapjobs.logs l),
  (SELECT md5(string_agg(d::text, ',' ORDER BY job_type_id)) FROM zapjobs.definitions d),
  (SELECT string_agg(relname || ':' || relfilenode, ',' ORDER BY relname) FROM pg_class
    WHERE relnamespace = 'zapjobs'::regnamespace AND relkind = 'r'
      AND relname IN ('runs', 'logs', 'definitions', 'heartbeats', 'continuations')),
  (SELECT string_agg(attrelid::regclass || '.' || attname, ',' ORDER BY attrelid, attnum)
    FROM pg_attribute WHERE attnum > 0 AND NOT attisdropped
      AND attrelid IN ('zapjobs.runs'::regclass, 'zapjobs.logs'::regclass,
                       'zapjobs.definitions'::regclass, 'zapjobs.heartbeats'::regclass))
"""

# The zapjobs schema as PostgreSQL prints it back: for each kind of object, (name, definition).
CATALOG = {
    "relations": """
        SELECT relname, relkind::text FROM pg_class
        WHERE relnamespace = 'zapjobs'::regnamespace""",
    "columns": """
        SELECT c.relname || '.' || a.attname,
               a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'zapjobs'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraints": """
        SELECT conrelid::regclass || '.' || conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'zapjobs'::regnamespace""",
    "indexes": """
        SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
        WHERE indrelid IN (
            SELECT oid FROM pg_class WHERE relnamespace = 'zapjobs'::regnamespace)""",
    "functions": """
        SELECT oid::regprocedure::text, pg_get_functiondef(oid) FROM pg_proc
        WHERE pronamespace = 'zapjobs'::regnamespace""",
    "triggers": """
        SELECT tgrelid::regclass || '.' || tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal
          AND tgrelid IN (
              SELECT oid FROM pg_class WHERE relnamespace = 'zapjobs'::regnamespace)""",
    "publications": """
        SELECT p.pubname, p.pubinsert || ' ' || p.pubupdate || ' ' || p.pubdelete || ' '
               || coalesce(string_agg(t.schemaname || '.' || t.tablename, ','
                                      ORDER BY t.schemaname, t.tablename), '')
        FROM pg_publication AS p
        LEFT JOIN pg_publication_tables AS t ON t.pubname = p.pubname
        GROUP BY p.pubname, p.pubinsert, p.pubupdate, p.pubdelete""",
    "types": """
        SELECT typname, typtype::text FROM pg_type
        WHERE typnamespace = 'zapjobs'::regnamespace AND typtype IN ('d', 'e', 'r', 'm')""",
}


def _query(dsn: str, sql: str) -> list[tuple[object, ...]]:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def _versions(dsn: str) -> list[object]:
    return [row[0] for row in _query(dsn, "SELECT version FROM zapjobs.sse_migrations ORDER BY 1")]


def _catalog(dsn: str) -> dict[str, dict[str, object]]:
    return {
        kind: {str(name): definition for name, definition in _query(dsn, sql)}
        for kind, sql in CATALOG.items()
    }


@pytest.fixture
def schema_file_dsn(admin_dsn: str) -> Iterator[str]:
    """A fresh database with ZapJobs' tables (migration 001), then db/schema.sql."""
    name = f"zapjobs_sse_t_{uuid.uuid4().hex[:12]}"
    create_database(admin_dsn, name)
    dsn = with_database(admin_dsn, name)
    try:
        _query(dsn, load_migrations()[0].sql)
        _query(dsn, resources.files("zapjobs_sse.db").joinpath("schema.sql").read_text("utf-8"))
        yield dsn
    finally:
        drop_database(admin_dsn, name)


async def test_every_migration_in_order_yields_exactly_the_schema_file(
    empty_database_dsn: str, schema_file_dsn: str
) -> None:
    await apply_migrations(empty_database_dsn)
    migrated, described = _catalog(empty_database_dsn), _catalog(schema_file_dsn)
    assert migrated["functions"] and migrated["triggers"] and migrated["publications"], (
        "the catalog queries found nothing"
    )
    for kind in CATALOG:
        assert migrated[kind] == described[kind], f"{kind} differ from zapjobs_sse/db/schema.sql"


async def test_migrations_twice_in_a_row_apply_once(empty_database_dsn: str) -> None:
    first = await apply_migrations(empty_database_dsn)
    second = await apply_migrations(empty_database_dsn)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert second == []
    assert _versions(empty_database_dsn) == [m.version for m in load_migrations()]


async def test_two_migrators_at_once_both_succeed_and_apply_once(empty_database_dsn: str) -> None:
    results = await asyncio.gather(
        apply_migrations(empty_database_dsn), apply_migrations(empty_database_dsn)
    )
    applied = sorted(len(result) for result in results)
    assert applied == [0, len(load_migrations())]
    assert _versions(empty_database_dsn) == [m.version for m in load_migrations()]


async def test_migrations_on_existing_zapjobs_tables_keep_rows_and_files(
    empty_database_dsn: str,
) -> None:
    _query(empty_database_dsn, ZAPJOBS_SCRIPT)
    before = _query(empty_database_dsn, SNAPSHOT)
    await apply_migrations(empty_database_dsn)
    after = _query(empty_database_dsn, SNAPSHOT)
    # Same rows, same physical files (no rewrite), same columns (no ALTER).
    assert before == after
    # The triggers work on the tables ZapJobs created.
    connection = psycopg2.connect(empty_database_dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("LISTEN zapjobs_sse")
            cursor.execute("UPDATE zapjobs.runs SET status = 2 WHERE progress_message = 'row 1'")
            connection.poll()
            assert [n.channel for n in connection.notifies] == ["zapjobs_sse"]
    finally:
        connection.close()


def test_print_sql_shows_every_migration_without_a_database() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zapjobs_sse", "migrate", "--print-sql"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "ZAPJOBS_DSN": "postgresql://nobody@127.0.0.1:1/none"},
    )
    for migration in load_migrations():
        assert f"-- {migration.version:03d}_{migration.name}.sql" in result.stdout
    assert "CREATE TRIGGER sse_run_updated_v1" in result.stdout


def test_moving_no_failed_run_to_the_dead_letter_writes_and_notifies_nothing(
    database_dsn: str,
) -> None:
    # A worker's recovery pass runs the move on every heartbeat, mostly with nothing to
    # move: that must not cost the writers a notification.
    connection = psycopg2.connect(database_dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("LISTEN zapjobs_sse")
            cursor.execute("SELECT * FROM zapjobs.sse_move_to_dead_letter_v1(NULL)")
            assert cursor.fetchall() == []
            cursor.execute(
                "SELECT * FROM zapjobs.sse_move_to_dead_letter_v1(%s::jsonb)",
                (
                    '[{"id": "3f9c1a2b-0000-4000-8000-000000000001", "job_type_id": "email",'
                    ' "queue": "default", "error_message": "boom", "attempt_number": 3}]',
                ),
            )
            assert cursor.fetchall() == [("3f9c1a2b-0000-4000-8000-000000000001",)]
            connection.poll()
            assert len(connection.notifies) == 1  # the second call only
            cursor.execute("SELECT count(*) FROM zapjobs.dead_letter")
            assert cursor.fetchone() == (1,)
    finally:
        connection.close()
