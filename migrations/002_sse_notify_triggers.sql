-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- Notification triggers of zapjobs-sse (version 1).
--
-- A notification says WHAT changed (keys only, never row content), so its payload
-- is small and bounded whatever the rows hold: at most 100 UUIDs, or one worker id
-- of at most 255 characters, JSON-escaped: always far below PostgreSQL's 8000-byte
-- limit. Nothing here can raise on row content, so no writer's statement can fail
-- because of us.
--
-- Cost control (NOTIFY takes a cluster-wide lock at commit):
--   * runs UPDATE: row trigger guarded by a WHEN clause, so a no-op update does
--     not even call the function;
--   * runs INSERT and logs INSERT: statement triggers over the transition table,
--     one notification per 100 distinct keys (a 1,000-line log batch of one run
--     costs ONE notification);
--   * identical payloads in a transaction are merged by PostgreSQL itself.
--
-- Switch: notifications are sent unless the setting zapjobs_sse.notify is 'off'
-- (SET for a session, ALTER DATABASE/ROLE ... SET, or ALTER SYSTEM + reload).

CREATE OR REPLACE FUNCTION zapjobs.sse_notify_enabled_v1() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('zapjobs_sse.notify', true), '') <> 'off' $$;

-- Sends {"k": kind, "ids": [...]} for every 100 keys of the given set.
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
        PERFORM pg_notify('zapjobs_sse', json_build_object('k', kind, 'ids', chunk)::text);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION zapjobs.sse_runs_inserted_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM zapjobs.sse_notify_keys_v1('run', ARRAY(SELECT id::text FROM sse_new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION zapjobs.sse_run_updated_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('zapjobs_sse', json_build_object('k', 'run', 'ids', ARRAY[NEW.id])::text);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION zapjobs.sse_logs_inserted_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM zapjobs.sse_notify_keys_v1(
            'log', ARRAY(SELECT DISTINCT run_id::text FROM sse_new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION zapjobs.sse_heartbeat_changed_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', 'worker_gone', 'ids', ARRAY[left(OLD.worker_id, 255)])::text);
    ELSE
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', 'worker', 'ids', ARRAY[left(NEW.worker_id, 255)])::text);
    END IF;
    RETURN NULL;
END $$;

-- Changes that only move the stats (and the jobs / dead letter pages).
CREATE OR REPLACE FUNCTION zapjobs.sse_table_changed_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM pg_notify('zapjobs_sse', json_build_object('k', TG_TABLE_NAME)::text);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS sse_runs_inserted_v1 ON zapjobs.runs;
CREATE TRIGGER sse_runs_inserted_v1
    AFTER INSERT ON zapjobs.runs
    REFERENCING NEW TABLE AS sse_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_runs_inserted_v1();

-- Every column of a run is shown on its detail page, so any real change counts;
-- an UPDATE that writes the same values does not notify.
DROP TRIGGER IF EXISTS sse_run_updated_v1 ON zapjobs.runs;
CREATE TRIGGER sse_run_updated_v1
    AFTER UPDATE ON zapjobs.runs
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.* AND zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_run_updated_v1();

DROP TRIGGER IF EXISTS sse_runs_deleted_v1 ON zapjobs.runs;
CREATE TRIGGER sse_runs_deleted_v1
    AFTER DELETE ON zapjobs.runs
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

DROP TRIGGER IF EXISTS sse_logs_inserted_v1 ON zapjobs.logs;
CREATE TRIGGER sse_logs_inserted_v1
    AFTER INSERT ON zapjobs.logs
    REFERENCING NEW TABLE AS sse_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_logs_inserted_v1();

DROP TRIGGER IF EXISTS sse_logs_deleted_v1 ON zapjobs.logs;
CREATE TRIGGER sse_logs_deleted_v1
    AFTER DELETE ON zapjobs.logs
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

DROP TRIGGER IF EXISTS sse_heartbeat_written_v1 ON zapjobs.heartbeats;
CREATE TRIGGER sse_heartbeat_written_v1
    AFTER INSERT OR UPDATE ON zapjobs.heartbeats
    FOR EACH ROW
    WHEN (zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_heartbeat_changed_v1();

DROP TRIGGER IF EXISTS sse_heartbeat_deleted_v1 ON zapjobs.heartbeats;
CREATE TRIGGER sse_heartbeat_deleted_v1
    AFTER DELETE ON zapjobs.heartbeats
    FOR EACH ROW
    WHEN (zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_heartbeat_changed_v1();

DROP TRIGGER IF EXISTS sse_definitions_changed_v1 ON zapjobs.definitions;
CREATE TRIGGER sse_definitions_changed_v1
    AFTER INSERT OR UPDATE OR DELETE ON zapjobs.definitions
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

DROP TRIGGER IF EXISTS sse_dead_letter_changed_v1 ON zapjobs.dead_letter;
CREATE TRIGGER sse_dead_letter_changed_v1
    AFTER INSERT OR UPDATE OR DELETE ON zapjobs.dead_letter
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();
