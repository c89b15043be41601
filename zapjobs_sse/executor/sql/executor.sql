-- Every statement the Python executor runs (worker, enqueue, definitions). Each is one
-- autocommit statement: several changes that belong together are one statement with
-- CTEs, so they commit together. Every status change is a plain UPDATE of the run: the
-- triggers of migrations/ make it live. Timestamps are UTC (columns are TIMESTAMP
-- without time zone). A worker only finishes a run it still owns (status Running and
-- its worker_id): a run cancelled or recovered meanwhile is left as it is.

-- name: upsert_definitions --
-- The code is the source of truth for what a job is; is_enabled and the schedule
-- columns belong to the operators and are left alone.
INSERT INTO zapjobs.definitions AS d (
    job_type_id, display_name, description, queue, max_retries, timeout_seconds,
    max_concurrency, created_at, updated_at
)
SELECT j.job_type_id, j.display_name, j.description, j.queue, j.max_retries,
       j.timeout_seconds, j.max_concurrency,
       now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM unnest(
    %(job_type_ids)s::text[], %(display_names)s::text[], %(descriptions)s::text[],
    %(queues)s::text[], %(max_retries)s::int[], %(timeouts)s::int[], %(concurrency)s::int[]
) AS j(job_type_id, display_name, description, queue, max_retries, timeout_seconds,
       max_concurrency)
ON CONFLICT (job_type_id) DO UPDATE SET
    display_name = EXCLUDED.display_name,
    description = EXCLUDED.description,
    queue = EXCLUDED.queue,
    max_retries = EXCLUDED.max_retries,
    timeout_seconds = EXCLUDED.timeout_seconds,
    max_concurrency = EXCLUDED.max_concurrency,
    updated_at = EXCLUDED.updated_at
WHERE (d.display_name, d.description, d.queue, d.max_retries, d.timeout_seconds,
       d.max_concurrency)
    IS DISTINCT FROM
      (EXCLUDED.display_name, EXCLUDED.description, EXCLUDED.queue, EXCLUDED.max_retries,
       EXCLUDED.timeout_seconds, EXCLUDED.max_concurrency)
RETURNING job_type_id

-- name: known_job_types --
SELECT job_type_id FROM zapjobs.definitions ORDER BY job_type_id

-- name: enqueue_run --
-- Inserts nothing when the job type has no definition (the caller then says so).
INSERT INTO zapjobs.runs (id, job_type_id, status, triggered_by, queue, created_at, input_json)
SELECT %(id)s::uuid, d.job_type_id, 0, %(triggered_by)s, coalesce(%(queue)s, d.queue),
       now() AT TIME ZONE 'utc', %(input_json)s
FROM zapjobs.definitions AS d
WHERE d.job_type_id = %(job_type)s
RETURNING id::text AS id, queue

-- name: claim_runs --
-- Pending runs, and runs whose retry is due, of the job types this worker knows, oldest
-- first. A job type gets at most max_concurrency running runs (counted across workers;
-- two workers claiming at the same instant may briefly exceed it). SKIP LOCKED: workers
-- never wait for each other and never claim the same run.
WITH slots AS (
    SELECT d.job_type_id, d.max_retries, d.timeout_seconds,
           least(%(limit)s, d.max_concurrency - (
               SELECT count(*) FROM zapjobs.runs AS busy
               WHERE busy.status = 2 AND busy.job_type_id = d.job_type_id
           ))::int AS free
    FROM zapjobs.definitions AS d
    WHERE d.job_type_id = ANY(%(job_types)s::text[]) AND d.is_enabled
), picked AS (
    SELECT c.id, c.created_at, s.max_retries, s.timeout_seconds
    FROM slots AS s
    CROSS JOIN LATERAL (
        SELECT r.id, r.created_at FROM zapjobs.runs AS r
        WHERE r.job_type_id = s.job_type_id
          AND r.queue = ANY(%(queues)s::text[])
          AND (r.status = 0
               OR (r.status = 6 AND r.next_retry_at <= now() AT TIME ZONE 'utc'))
        ORDER BY r.created_at
        LIMIT greatest(s.free, 0)
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.created_at
    LIMIT %(limit)s
)
UPDATE zapjobs.runs AS r SET
    status = 2,
    worker_id = %(worker_id)s,
    started_at = now() AT TIME ZONE 'utc',
    completed_at = NULL,
    next_retry_at = NULL,
    duration_ms = NULL,
    progress = 0,
    total = 0,
    progress_message = NULL
FROM picked
WHERE r.id = picked.id
RETURNING r.id::text AS id, r.job_type_id, r.queue, r.attempt_number, r.input_json,
          picked.max_retries, picked.timeout_seconds

-- name: complete_runs --
-- The runs that finished while the previous completion was being written, in one
-- statement (one commit, however many).
UPDATE zapjobs.runs AS r SET
    status = 3,
    completed_at = now() AT TIME ZONE 'utc',
    duration_ms = (extract(epoch FROM (now() AT TIME ZONE 'utc') - r.started_at) * 1000)::int,
    output_json = c.output_json,
    error_message = NULL,
    error_type = NULL,
    stack_trace = NULL
FROM unnest(%(ids)s::uuid[], %(outputs)s::text[]) AS c(id, output_json)
WHERE r.id = c.id AND r.status = 2 AND r.worker_id = %(worker_id)s
RETURNING r.id::text AS id, r.completed_at

-- name: schedule_retry --
UPDATE zapjobs.runs SET
    status = 6,
    attempt_number = attempt_number + 1,
    next_retry_at = (now() AT TIME ZONE 'utc') + %(delay)s * interval '1 second',
    duration_ms = (extract(epoch FROM (now() AT TIME ZONE 'utc') - started_at) * 1000)::int,
    error_message = %(error_message)s,
    error_type = %(error_type)s,
    stack_trace = %(stack_trace)s
WHERE id = %(id)s::uuid AND status = 2 AND worker_id = %(worker_id)s
RETURNING id::text AS id, now() AT TIME ZONE 'utc' AS completed_at

-- name: fail_run --
-- The last attempt failed: the run is Failed and a copy goes to the dead letter queue
-- (zapjobs.sse_move_to_dead_letter_v1 of migration 005, as in recover_stale_runs).
WITH failed AS (
    UPDATE zapjobs.runs SET
        status = 4,
        completed_at = now() AT TIME ZONE 'utc',
        next_retry_at = NULL,
        duration_ms = (extract(epoch FROM (now() AT TIME ZONE 'utc') - started_at) * 1000)::int,
        error_message = %(error_message)s,
        error_type = %(error_type)s,
        stack_trace = %(stack_trace)s
    WHERE id = %(id)s::uuid AND status = 2 AND worker_id = %(worker_id)s
    RETURNING id, job_type_id, queue, input_json, error_message, error_type, stack_trace,
              attempt_number, completed_at
), moved AS (
    SELECT original_run_id
    FROM zapjobs.sse_move_to_dead_letter_v1((SELECT jsonb_agg(failed) FROM failed))
        AS original_run_id
)
SELECT failed.id::text AS id, failed.completed_at FROM failed JOIN moved ON moved.original_run_id = failed.id

-- name: finish_cancelled_run --
-- Someone set the run to Cancelled while it ran: it keeps that status; the worker adds
-- when it stopped.
UPDATE zapjobs.runs SET
    completed_at = coalesce(completed_at, now() AT TIME ZONE 'utc'),
    duration_ms = coalesce(duration_ms,
        (extract(epoch FROM (now() AT TIME ZONE 'utc') - started_at) * 1000)::int)
WHERE id = %(id)s::uuid AND status = 5 AND worker_id = %(worker_id)s
RETURNING id::text AS id

-- name: release_runs --
-- Shutdown: the runs this worker could not finish go back to Pending for another worker;
-- the attempt does not count against the run.
UPDATE zapjobs.runs SET
    status = 0,
    worker_id = NULL,
    started_at = NULL,
    progress = 0,
    total = 0,
    progress_message = NULL
WHERE id = ANY(%(ids)s::uuid[]) AND status = 2 AND worker_id = %(worker_id)s
RETURNING id::text AS id

-- name: run_owners --
-- Who the running runs of a worker belong to now (cancelled, or recovered by another).
SELECT id::text AS id, status, worker_id FROM zapjobs.runs WHERE id = ANY(%(ids)s::uuid[])

-- name: recover_stale_runs --
-- Runs still Running under a worker whose heartbeat is older than %(stale_after)s
-- seconds: the worker died. The lost attempt counts: the run goes back to Pending, or,
-- when it had no retry left, to Failed and the dead letter queue.
WITH lost AS (
    SELECT worker_id FROM zapjobs.heartbeats
    WHERE timestamp < (now() AT TIME ZONE 'utc') - %(stale_after)s * interval '1 second'
), orphans AS (
    SELECT r.id, r.attempt_number > coalesce(d.max_retries, 3) AS exhausted, r.worker_id
    FROM zapjobs.runs AS r
    LEFT JOIN zapjobs.definitions AS d ON d.job_type_id = r.job_type_id
    WHERE r.status = 2 AND r.worker_id IN (SELECT worker_id FROM lost)
    FOR UPDATE OF r SKIP LOCKED
), requeued AS (
    UPDATE zapjobs.runs AS r SET
        status = 0,
        worker_id = NULL,
        started_at = NULL,
        progress = 0,
        total = 0,
        progress_message = NULL,
        attempt_number = r.attempt_number + 1,
        error_message = 'worker ' || o.worker_id || ' stopped sending heartbeats',
        error_type = 'WorkerLost'
    FROM orphans AS o
    WHERE r.id = o.id AND NOT o.exhausted
    RETURNING r.id
), failed AS (
    UPDATE zapjobs.runs AS r SET
        status = 4,
        completed_at = now() AT TIME ZONE 'utc',
        duration_ms = (extract(epoch FROM (now() AT TIME ZONE 'utc') - r.started_at) * 1000)::int,
        error_message = 'worker ' || o.worker_id || ' stopped sending heartbeats',
        error_type = 'WorkerLost'
    FROM orphans AS o
    WHERE r.id = o.id AND o.exhausted
    RETURNING r.id, r.job_type_id, r.queue, r.input_json, r.error_message, r.error_type,
              r.stack_trace, r.attempt_number
), moved AS (
    SELECT original_run_id
    FROM zapjobs.sse_move_to_dead_letter_v1((SELECT jsonb_agg(failed) FROM failed))
        AS original_run_id
)
SELECT id::text AS id, 'requeued' AS outcome FROM requeued
UNION ALL
SELECT original_run_id::text, 'dead_letter' FROM moved

-- name: upsert_heartbeat --
INSERT INTO zapjobs.heartbeats AS h (
    id, worker_id, hostname, process_id, current_job_type, current_run_id, timestamp,
    queues, jobs_processed, jobs_failed, is_shutting_down, started_at
) VALUES (
    gen_random_uuid(), %(worker_id)s, %(hostname)s, %(process_id)s, %(current_job_type)s,
    %(current_run_id)s::uuid, now() AT TIME ZONE 'utc', %(queues)s::text[],
    %(jobs_processed)s, %(jobs_failed)s, %(is_shutting_down)s, now() AT TIME ZONE 'utc'
)
ON CONFLICT (worker_id) DO UPDATE SET
    hostname = EXCLUDED.hostname,
    process_id = EXCLUDED.process_id,
    current_job_type = EXCLUDED.current_job_type,
    current_run_id = EXCLUDED.current_run_id,
    timestamp = EXCLUDED.timestamp,
    queues = EXCLUDED.queues,
    jobs_processed = EXCLUDED.jobs_processed,
    jobs_failed = EXCLUDED.jobs_failed,
    is_shutting_down = EXCLUDED.is_shutting_down
RETURNING worker_id

-- name: record_last_runs --
-- The definitions' last_run_at / last_run_status, written once per heartbeat rather
-- than once per run (workers finishing runs of one type would queue on its row).
UPDATE zapjobs.definitions AS d SET
    last_run_at = u.at,
    last_run_status = u.status
FROM unnest(%(job_type_ids)s::text[], %(ats)s::timestamp[], %(statuses)s::int[])
    AS u(job_type_id, at, status)
WHERE d.job_type_id = u.job_type_id AND (d.last_run_at IS NULL OR d.last_run_at < u.at)
RETURNING d.job_type_id

-- name: insert_logs --
-- One batch of one run's lines. Each line is stamped with the database clock less its
-- age (buffering does not make it later) and strictly after the line before it, this
-- batch's or the previous one's (%(after)s): the dashboard orders a run's lines by
-- (timestamp, id), and ids are random.
WITH clock AS (
    SELECT clock_timestamp() AT TIME ZONE 'utc' AS now
), line AS (
    SELECT l.n, l.level, l.message, l.category, l.exception,
           clock.now - l.age_us * interval '1 microsecond' AS stamped
    FROM clock, unnest(
        %(levels)s::int[], %(messages)s::text[], %(categories)s::text[],
        %(exceptions)s::text[], %(ages_us)s::bigint[]
    ) WITH ORDINALITY AS l(level, message, category, exception, age_us, n)
), ordered AS (
    SELECT n, level, message, category, exception,
           greatest(
               max(stamped - n * interval '1 microsecond') OVER (ORDER BY n)
                   + n * interval '1 microsecond',
               %(after)s::timestamp + n * interval '1 microsecond'
           ) AS stamp
    FROM line
), inserted AS (
    INSERT INTO zapjobs.logs (id, run_id, level, message, category, exception, timestamp)
    SELECT gen_random_uuid(), %(run_id)s::uuid, level, message, category, exception, stamp
    FROM ordered
    ORDER BY n
    RETURNING timestamp
)
SELECT max(timestamp) AS last FROM inserted

-- name: update_progress --
UPDATE zapjobs.runs SET
    progress = %(done)s,
    total = %(total)s,
    progress_message = %(message)s
WHERE id = %(id)s::uuid AND status = 2 AND worker_id = %(worker_id)s
RETURNING id::text AS id

-- name: forget_old_workers --
-- Heartbeat rows silent for a day are dead workers (each process start is a new worker
-- id): removed, once none of their runs is left Running, so the worker list stays short.
DELETE FROM zapjobs.heartbeats AS h
WHERE h.timestamp < (now() AT TIME ZONE 'utc') - interval '1 day'
  AND NOT EXISTS (
      SELECT 1 FROM zapjobs.runs AS r WHERE r.status = 2 AND r.worker_id = h.worker_id
  )
RETURNING h.worker_id
