-- zapjobs-sse: no-transaction
-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- Indexes the dashboard needs on tables that may already be large and busy: built
-- CONCURRENTLY, so executors keep writing while they build.

-- The live log tail and the log API read a run's lines by cursor (timestamp, id).
CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_logs_run_cursor_idx
    ON zapjobs.logs (run_id, timestamp, id);

-- Keyset pagination of the runs page, unfiltered and filtered by status or job type.
CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_runs_created_idx
    ON zapjobs.runs (created_at DESC, id DESC);

CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_runs_status_created_idx
    ON zapjobs.runs (status, created_at DESC, id DESC);

CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_runs_job_type_created_idx
    ON zapjobs.runs (job_type_id, created_at DESC, id DESC);
