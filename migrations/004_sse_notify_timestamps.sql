-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- Notification triggers of zapjobs-sse, version 1 with a write time.
--
-- Each payload gains "t": when the writing transaction started, in epoch seconds with
-- millisecond precision (at most 14 bytes more, so payloads stay far below 8000 bytes).
-- The server measures with it the delay from the write to the events on the streams
-- (the zapjobs_sse_commit_to_send_delay_seconds histogram of /metrics).
--
-- The transaction's start (now()), not the clock, so that several identical
-- notifications of one transaction stay identical and PostgreSQL still merges them.
-- Same functions, same signatures, same triggers as 002: only the payloads change,
-- and a server that predates "t" ignores it.

CREATE OR REPLACE FUNCTION zapjobs.sse_notify_time_v1() RETURNS numeric
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT round(extract(epoch FROM now())::numeric, 3) $$;

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

CREATE OR REPLACE FUNCTION zapjobs.sse_run_updated_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('zapjobs_sse', json_build_object(
        'k', 'run', 'ids', ARRAY[NEW.id], 't', zapjobs.sse_notify_time_v1())::text);
    RETURN NULL;
END $$;

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

CREATE OR REPLACE FUNCTION zapjobs.sse_table_changed_v1() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF zapjobs.sse_notify_enabled_v1() THEN
        PERFORM pg_notify('zapjobs_sse', json_build_object(
            'k', TG_TABLE_NAME, 't', zapjobs.sse_notify_time_v1())::text);
    END IF;
    RETURN NULL;
END $$;
