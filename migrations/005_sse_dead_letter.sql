-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- Moving failed runs to the dead letter queue, in one place for every statement that
-- fails runs (the executor's last failed attempt, the recovery of a dead worker's runs).
--
-- It takes the runs as the statement that failed them left them (a jsonb array of objects
-- named like the runs' columns, as jsonb_agg makes of that statement's RETURNING rows): it
-- could not read them back from zapjobs.runs, since every part of one statement sees the
-- same snapshot. jsonb rather than zapjobs.runs[], so that the function does not depend on
-- the row type of a table ZapJobs owns (which could then not be dropped without CASCADE).
-- Returns the original_run_id of every entry written. STRICT: with no failed run (NULL)
-- nothing is inserted, so the dead letter trigger does not notify for nothing.

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
