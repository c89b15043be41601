-- zapjobs-sse: no-transaction
-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- A job type's finished runs by status and completion time, with what its insights
-- count: an index-only scan answers a day of one job type (counts, duration percentiles)
-- and a month of its failures (error types) without reading the runs. Built
-- CONCURRENTLY, so executors keep writing.

CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_runs_job_type_completed_idx
    ON zapjobs.runs (job_type_id, status, completed_at) INCLUDE (duration_ms, error_type)
    WHERE completed_at IS NOT NULL;
