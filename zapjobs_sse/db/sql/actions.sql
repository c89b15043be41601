-- The operators' actions (server/http/actions.py) and their audit trail. Each action
-- runs in one short transaction (Database.transaction) whose changes are conditional on
-- the state they expect: a row that an executor changed meanwhile is re-checked by
-- PostgreSQL after its lock is released, and left alone when it no longer matches. What
-- the rows get is what ZapJobs' own API writes (README.md, "Actions"). Timestamps UTC.

-- name: claim_idempotency_key --
-- The first request with this key claims it; a second one waits here until the first
-- commits, then finds it taken (and replays its answer). An expired key is claimed anew.
INSERT INTO zapjobs.sse_idempotency AS k (key, created_at)
VALUES (%(key)s, now() AT TIME ZONE 'utc')
ON CONFLICT (key) DO UPDATE SET
    created_at = EXCLUDED.created_at,
    http_status = NULL,
    response = NULL
WHERE k.created_at < (now() AT TIME ZONE 'utc') - %(hours)s * interval '1 hour'
RETURNING key

-- name: idempotency_answer --
SELECT http_status, response FROM zapjobs.sse_idempotency WHERE key = %(key)s

-- name: store_idempotency_answer --
UPDATE zapjobs.sse_idempotency SET http_status = %(http_status)s, response = %(response)s
WHERE key = %(key)s

-- name: forget_idempotency_keys --
DELETE FROM zapjobs.sse_idempotency
WHERE created_at < (now() AT TIME ZONE 'utc') - %(hours)s * interval '1 hour'

-- name: trigger_job --
-- As ZapJobs' TriggerAsync: Pending (0), trigger type Manual (0), the given input, else
-- the definition's config_json. Unlike it: the definition's queue (not the default
-- queue) and the acting identity as triggered_by (not 'manual').
INSERT INTO zapjobs.runs (
    id, job_type_id, status, trigger_type, triggered_by, queue, created_at, input_json
)
SELECT gen_random_uuid(), d.job_type_id, 0, 0, left(%(identity)s, 255), d.queue,
       now() AT TIME ZONE 'utc', coalesce(%(input_json)s, d.config_json)
FROM zapjobs.definitions AS d
WHERE d.job_type_id = %(job_type)s
RETURNING *

-- name: cancel_run --
-- As ZapJobs' CancelAsync (Cancelled, completed_at now), only from a state that is not
-- final: Pending, Scheduled, Running, AwaitingRetry.
UPDATE zapjobs.runs SET
    status = 5,
    completed_at = now() AT TIME ZONE 'utc'
WHERE id = %(id)s::uuid AND status IN (0, 1, 2, 6)
RETURNING *

-- name: retry_run --
-- A new Pending run of a Failed or Cancelled run's job type, queue and input (trigger
-- type Manual), and its link to the original in sse_run_retries.
WITH original AS (
    SELECT id, job_type_id, queue, input_json FROM zapjobs.runs
    WHERE id = %(id)s::uuid AND status IN (4, 5)
    FOR SHARE
), created AS (
    INSERT INTO zapjobs.runs (
        id, job_type_id, status, trigger_type, triggered_by, queue, created_at, input_json
    )
    SELECT gen_random_uuid(), o.job_type_id, 0, 0, left(%(identity)s, 255), o.queue,
           now() AT TIME ZONE 'utc', o.input_json
    FROM original AS o
    RETURNING *
), linked AS (
    INSERT INTO zapjobs.sse_run_retries (run_id, retry_of, created_at, created_by)
    SELECT c.id, %(id)s::uuid, c.created_at, left(%(identity)s, 255) FROM created AS c
)
SELECT * FROM created

-- name: requeue_dead_letter --
-- As ZapJobs' DeadLetterManager.RequeueAsync: a new Pending run (trigger type Api, 3)
-- with the entry's job type, queue and input; the entry Requeued (1) with requeued_at
-- and requeued_run_id. Only Pending (0) entries: one (%(id)s) or the first %(limit)s of
-- a filter, oldest first. FOR UPDATE waits for a concurrent action on the same entries
-- and then skips those it changed.
WITH picked AS (
    SELECT id FROM zapjobs.dead_letter
    WHERE status = 0
      AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid)
      AND (%(job_type)s::text IS NULL OR job_type_id = %(job_type)s::text)
    ORDER BY moved_at, id
    LIMIT %(limit)s
    FOR UPDATE
), changed AS (
    UPDATE zapjobs.dead_letter AS e SET
        status = 1,
        requeued_at = now() AT TIME ZONE 'utc',
        requeued_run_id = gen_random_uuid()
    FROM picked
    WHERE e.id = picked.id AND e.status = 0
    RETURNING e.*
), created AS (
    INSERT INTO zapjobs.runs (
        id, job_type_id, status, trigger_type, triggered_by, queue, created_at, input_json
    )
    SELECT c.requeued_run_id, c.job_type_id, 0, 3, left(%(identity)s, 255), c.queue,
           c.requeued_at, c.input_json
    FROM changed AS c
)
SELECT * FROM changed

-- name: settle_dead_letter --
-- As DeadLetterManager.DiscardAsync / ArchiveAsync: status %(status)s (Discarded 2,
-- Archived 3), only from Pending (0); one entry or the first %(limit)s of a filter.
WITH picked AS (
    SELECT id FROM zapjobs.dead_letter
    WHERE status = 0
      AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid)
      AND (%(job_type)s::text IS NULL OR job_type_id = %(job_type)s::text)
    ORDER BY moved_at, id
    LIMIT %(limit)s
    FOR UPDATE
)
UPDATE zapjobs.dead_letter AS e SET status = %(status)s
FROM picked
WHERE e.id = picked.id AND e.status = 0
RETURNING e.*

-- name: set_job_enabled --
-- is_enabled; disabling clears next_run_at (as ZapJobs' RemoveRecurringAsync, which
-- also sets the schedule type to Manual: we keep the schedule, so that enabling brings
-- it back). Enabling an interval schedule with no next run plans one interval from now,
-- as ZapJobs' scheduler does after each run. Nothing is written when there is nothing
-- to change.
UPDATE zapjobs.definitions SET
    is_enabled = %(enabled)s,
    next_run_at = CASE
        WHEN NOT %(enabled)s THEN NULL
        WHEN next_run_at IS NULL AND schedule_type = 1 AND interval_minutes IS NOT NULL
            THEN (now() AT TIME ZONE 'utc') + interval_minutes * interval '1 minute'
        ELSE next_run_at END,
    updated_at = now() AT TIME ZONE 'utc'
WHERE job_type_id = %(job_type)s
  AND (is_enabled IS DISTINCT FROM %(enabled)s OR (NOT %(enabled)s AND next_run_at IS NOT NULL))
RETURNING *

-- name: definition_by_id --
SELECT * FROM zapjobs.definitions WHERE job_type_id = %(job_type)s

-- name: dead_letter_by_id --
SELECT * FROM zapjobs.dead_letter WHERE id = %(id)s::uuid

-- name: record_activity --
INSERT INTO zapjobs.sse_activity (
    id, at, identity, action, target_kind, target_id, outcome, http_status, message,
    filter_json, changed, run_id
) VALUES (
    gen_random_uuid(), clock_timestamp() AT TIME ZONE 'utc', left(%(identity)s, 255),
    %(action)s, %(target_kind)s, left(%(target_id)s, 255), %(outcome)s, %(http_status)s,
    %(message)s, %(filter_json)s, %(changed)s, %(run_id)s::uuid
)
RETURNING *

-- name: list_activity --
-- Keyset pagination, newest first: rows strictly after the (at, id) key.
SELECT * FROM zapjobs.sse_activity
WHERE (%(before_at)s::timestamp IS NULL
       OR (at, id) < (%(before_at)s::timestamp, %(before_id)s::uuid))
ORDER BY at DESC, id DESC
LIMIT %(limit)s
