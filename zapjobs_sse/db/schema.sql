-- The current schema of everything zapjobs-sse owns in the zapjobs schema: every object
-- as it is once every migration has run, in one place (function bodies included). The
-- migrations runner never reads this file; migrations/NNN_*.sql are the history, and
-- tests/integration/test_migrations.py proves that they add up to exactly this.
--
-- Change a sidecar object with a new migration AND here, in the same commit.
--
-- Not here: ZapJobs' own tables (definitions, runs, logs, heartbeats, continuations,
-- dead_letter) and their indexes, which belong to the scheduler: migration 001 creates
-- them only where they are missing (IF NOT EXISTS) and never alters them.

-- The migrations applied (created by the runner itself, before any migration).
CREATE TABLE zapjobs.sse_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

-- Notifications ------------------------------------------------------------------------
-- A payload is {"k": kind, "ids": [keys], "t": write time}: keys only, at most 100 of
-- them, so always far below PostgreSQL's 8000-byte limit. Nothing here raises on row
-- content. Sent unless the setting zapjobs_sse.notify is 'off' (002).

CREATE OR REPLACE FUNCTION zapjobs.sse_notify_enabled_v1() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('zapjobs_sse.notify', true), '') <> 'off' $$;

-- When the writing transaction started, epoch seconds to the millisecond (004).
CREATE OR REPLACE FUNCTION zapjobs.sse_notify_time_v1() RETURNS numeric
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT round(extract(epoch FROM now())::numeric, 3) $$;

-- Sends one notification for every 100 keys of the given set (002, 004).
CREATE OR REPLACE FUNCTION zapjobs.sse_notify_keys_v1(kind text, keys text[]) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    chunk text[];
BEGIN
    FOR chunk IN
        SELECT array_agg(key) FROM (
            SELECT key, (row_number() OVER () - 1) / 100 AS part
            FROM unnest(keys) AS key
        ) AS numbered GROUP BY part
    LOOP
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', kind, 'ids', chunk, 't', zapjobs.sse_notify_time_v1())::text);
    END LOOP;
END $$;

-- runs INSERT, per statement (002).
CREATE OR REPLACE FUNCTION zapjobs.sse_runs_inserted_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM zapjobs.sse_notify_keys_v1('run', ARRAY(SELECT id::text FROM sse_new_rows));
    END IF;
    RETURN NULL;
END $$;

-- runs UPDATE, per row; the trigger's WHEN clause skips no-op updates (002, 004).
CREATE OR REPLACE FUNCTION zapjobs.sse_run_updated_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('zapjobs_sse', json_build_object(
        'k', 'run', 'ids', ARRAY[NEW.id], 't', zapjobs.sse_notify_time_v1())::text);
    RETURN NULL;
END $$;

-- logs INSERT, per statement: one notification per 100 runs of the batch (002).
CREATE OR REPLACE FUNCTION zapjobs.sse_logs_inserted_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM zapjobs.sse_notify_keys_v1(
            'log', ARRAY(SELECT DISTINCT run_id::text FROM sse_new_rows));
    END IF;
    RETURN NULL;
END $$;

-- heartbeats INSERT, UPDATE, DELETE, per row (002, 004).
CREATE OR REPLACE FUNCTION zapjobs.sse_heartbeat_changed_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', 'worker_gone', 'ids', ARRAY[left(OLD.worker_id, 255)],
            't', zapjobs.sse_notify_time_v1())::text);
    ELSE
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', 'worker', 'ids', ARRAY[left(NEW.worker_id, 255)],
            't', zapjobs.sse_notify_time_v1())::text);
    END IF;
    RETURN NULL;
END $$;

-- Changes that only move the stats (and the jobs / dead letter pages) (002, 004).
CREATE OR REPLACE FUNCTION zapjobs.sse_table_changed_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', TG_TABLE_NAME, 't', zapjobs.sse_notify_time_v1())::text);
    END IF;
    RETURN NULL;
END $$;

-- Triggers (002) ----------------------------------------------------------------------

CREATE TRIGGER sse_runs_inserted_v1
    AFTER INSERT ON zapjobs.runs
    REFERENCING NEW TABLE AS sse_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_runs_inserted_v1();

-- Every column of a run is shown on its detail page, so any real change counts;
-- an UPDATE that writes the same values does not notify.
CREATE TRIGGER sse_run_updated_v1
    AFTER UPDATE ON zapjobs.runs
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.* AND zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_run_updated_v1();

CREATE TRIGGER sse_runs_deleted_v1
    AFTER DELETE ON zapjobs.runs
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

CREATE TRIGGER sse_logs_inserted_v1
    AFTER INSERT ON zapjobs.logs
    REFERENCING NEW TABLE AS sse_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_logs_inserted_v1();

CREATE TRIGGER sse_logs_deleted_v1
    AFTER DELETE ON zapjobs.logs
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

CREATE TRIGGER sse_heartbeat_written_v1
    AFTER INSERT OR UPDATE ON zapjobs.heartbeats
    FOR EACH ROW
    WHEN (zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_heartbeat_changed_v1();

CREATE TRIGGER sse_heartbeat_deleted_v1
    AFTER DELETE ON zapjobs.heartbeats
    FOR EACH ROW
    WHEN (zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_heartbeat_changed_v1();

CREATE TRIGGER sse_definitions_changed_v1
    AFTER INSERT OR UPDATE OR DELETE ON zapjobs.definitions
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

CREATE TRIGGER sse_dead_letter_changed_v1
    AFTER INSERT OR UPDATE OR DELETE ON zapjobs.dead_letter
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

-- Indexes the dashboard reads with (003, which builds them CONCURRENTLY) ---------------

-- The live log tail and the log API read a run's lines by cursor (timestamp, id).
CREATE INDEX sse_logs_run_cursor_idx
    ON zapjobs.logs (run_id, timestamp, id);

-- Keyset pagination of the runs page, unfiltered and filtered by status or job type.
CREATE INDEX sse_runs_created_idx
    ON zapjobs.runs (created_at DESC, id DESC);

CREATE INDEX sse_runs_status_created_idx
    ON zapjobs.runs (status, created_at DESC, id DESC);

CREATE INDEX sse_runs_job_type_created_idx
    ON zapjobs.runs (job_type_id, created_at DESC, id DESC);

-- The runs page filtered by queue (011, which builds it CONCURRENTLY).
CREATE INDEX sse_runs_queue_created_idx
    ON zapjobs.runs (queue, created_at DESC, id DESC);

-- The WAL feed (008) --------------------------------------------------------------------

-- What `serve --feed wal` decodes (pgoutput) from each server process's temporary slot.
-- Created only where the migrating role may (it must own the tables).
CREATE PUBLICATION zapjobs_sse FOR TABLE
    zapjobs.definitions, zapjobs.runs, zapjobs.logs, zapjobs.heartbeats, zapjobs.dead_letter;

-- The executor -------------------------------------------------------------------------

-- Writes the dead letter entries of runs that a statement just failed, given as a jsonb
-- array of those runs (jsonb_agg of its RETURNING rows); returns their original_run_id
-- (005).
CREATE OR REPLACE FUNCTION zapjobs.sse_move_to_dead_letter_v1(failed_runs jsonb)
    RETURNS SETOF uuid
    LANGUAGE sql STRICT AS $$
    INSERT INTO zapjobs.dead_letter (
        id, original_run_id, job_type_id, queue, input_json, error_message, error_type,
        stack_trace, attempt_count, moved_at
    )
    SELECT gen_random_uuid(), id, job_type_id, queue, input_json, error_message, error_type,
           stack_trace, attempt_number, now() AT TIME ZONE 'utc'
    FROM jsonb_to_recordset(failed_runs) AS failed(
        id uuid, job_type_id text, queue text, input_json text, error_message text,
        error_type text, stack_trace text, attempt_number integer
    )
    RETURNING original_run_id
$$;

-- Actions (006) ------------------------------------------------------------------------

-- The audit trail: every action, done or refused (except for missing credentials).
CREATE TABLE zapjobs.sse_activity (
    id UUID PRIMARY KEY,
    at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    identity VARCHAR(255) NOT NULL,
    action VARCHAR(50) NOT NULL,
    target_kind VARCHAR(20) NOT NULL,
    target_id VARCHAR(255),
    outcome VARCHAR(20) NOT NULL,
    http_status INTEGER NOT NULL,
    message TEXT,
    filter_json TEXT,
    changed INTEGER,
    run_id UUID
);

CREATE INDEX sse_activity_at_idx ON zapjobs.sse_activity (at DESC, id DESC);

-- A run made by retrying another: the new run and the run it retries.
CREATE TABLE zapjobs.sse_run_retries (
    run_id UUID PRIMARY KEY,
    retry_of UUID NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    created_by VARCHAR(255) NOT NULL
);

CREATE INDEX sse_run_retries_retry_of_idx ON zapjobs.sse_run_retries (retry_of);

-- Idempotency keys of actions (a digest of who, what and the form's key) and the answer
-- given, replayed to a resubmission; forgotten after --idempotency-hours.
CREATE TABLE zapjobs.sse_idempotency (
    key VARCHAR(64) PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    http_status INTEGER,
    response TEXT
);

CREATE INDEX sse_idempotency_created_idx ON zapjobs.sse_idempotency (created_at);

-- The dead letter's entries by status, oldest first: the bulk actions' batches and the
-- dead-letter page's status filter (007, which builds it CONCURRENTLY).
CREATE INDEX sse_dead_letter_status_moved_idx
    ON zapjobs.dead_letter (status, moved_at, id);

-- Insights (009, 010) ------------------------------------------------------------------

-- Hourly rollups of the finished runs for the insights of 7 and 30 days, rebuilt and
-- recomputed by the server, hour by hour, from zapjobs.runs (009).
-- A duration's histogram bucket (NULL for none): 0 for under 1 ms, else k for
-- [1.1^(k-1), 1.1^k) ms, so that the bucket's geometric middle is within 4.9 % of every
-- duration in it. Not STRICT, so that PostgreSQL inlines it into the queries.
CREATE OR REPLACE FUNCTION zapjobs.sse_duration_bucket_v1(ms integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 1 THEN 0 ELSE 1 + floor(ln(ms) / 0.09531017980432486)::integer END
$$;

-- The rollup rows of [since, until), computed from zapjobs.runs (of one job type, or all
-- of them when only_job_type is NULL): what the table below holds, hour for hour.
CREATE OR REPLACE FUNCTION zapjobs.sse_run_hours_v1(
    since timestamp, until timestamp, only_job_type text
) RETURNS TABLE (
    job_type_id varchar, hour timestamp, completed integer, failed integer,
    cancelled integer, buckets integer[], counts integer[]
)
LANGUAGE sql STABLE AS $$
    WITH per_bucket AS (
        SELECT r.job_type_id, date_trunc('hour', r.completed_at) AS hour,
               CASE WHEN r.status IN (3, 4)
                    THEN zapjobs.sse_duration_bucket_v1(r.duration_ms) END AS bucket,
               count(*) FILTER (WHERE r.status = 3) AS completed,
               count(*) FILTER (WHERE r.status = 4) AS failed,
               count(*) FILTER (WHERE r.status = 5) AS cancelled
        FROM zapjobs.runs AS r
        WHERE r.completed_at >= since AND r.completed_at < until
          AND r.status IN (3, 4, 5)
          AND (only_job_type IS NULL OR r.job_type_id = only_job_type)
        GROUP BY 1, 2, 3
    )
    SELECT b.job_type_id, b.hour, sum(b.completed)::integer, sum(b.failed)::integer,
           sum(b.cancelled)::integer,
           coalesce(array_agg(b.bucket ORDER BY b.bucket) FILTER (WHERE b.bucket IS NOT NULL),
                    '{}'),
           coalesce(array_agg((b.completed + b.failed)::integer ORDER BY b.bucket)
                        FILTER (WHERE b.bucket IS NOT NULL), '{}')
    FROM per_bucket AS b
    GROUP BY b.job_type_id, b.hour
$$;

CREATE TABLE zapjobs.sse_run_hours (
    job_type_id VARCHAR(255) NOT NULL,
    hour TIMESTAMP NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    buckets INTEGER[] NOT NULL,
    counts INTEGER[] NOT NULL,
    PRIMARY KEY (job_type_id, hour)
);

CREATE INDEX sse_run_hours_hour_idx ON zapjobs.sse_run_hours (hour);

-- A job type's finished runs by status and completion time, with what its insights count (010,
-- which builds it CONCURRENTLY).
CREATE INDEX sse_runs_job_type_completed_idx
    ON zapjobs.runs (job_type_id, status, completed_at) INCLUDE (duration_ms, error_type)
    WHERE completed_at IS NOT NULL;
