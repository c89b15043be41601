-- zapjobs-sse: no-transaction
-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- The runs page filtered by queue (`queue=`, the Queues page's links), newest first by
-- keyset, alone or with a status, job type or search: without it, a queue with no recent
-- runs walks the whole table. Built CONCURRENTLY, so executors keep writing.

CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_runs_queue_created_idx
    ON zapjobs.runs (queue, created_at DESC, id DESC);
