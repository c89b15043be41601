-- zapjobs-sse: no-transaction
-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- The dead letter's Pending entries oldest first, for the batches of the bulk actions
-- (and its page, filtered by status): built CONCURRENTLY, so executors keep writing.

CREATE INDEX CONCURRENTLY IF NOT EXISTS sse_dead_letter_status_moved_idx
    ON zapjobs.dead_letter (status, moved_at, id);
