-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- What the operators' actions need, in tables the sidecar owns (ZapJobs' own tables keep
-- their shape): the audit trail of every action, the link from a retried run to the run
-- it retries, and the idempotency keys that make a resubmitted form act once.

CREATE TABLE IF NOT EXISTS zapjobs.sse_activity (
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

CREATE INDEX IF NOT EXISTS sse_activity_at_idx ON zapjobs.sse_activity (at DESC, id DESC);

CREATE TABLE IF NOT EXISTS zapjobs.sse_run_retries (
    run_id UUID PRIMARY KEY,
    retry_of UUID NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    created_by VARCHAR(255) NOT NULL
);

CREATE INDEX IF NOT EXISTS sse_run_retries_retry_of_idx ON zapjobs.sse_run_retries (retry_of);

CREATE TABLE IF NOT EXISTS zapjobs.sse_idempotency (
    key VARCHAR(64) PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    http_status INTEGER,
    response TEXT
);

CREATE INDEX IF NOT EXISTS sse_idempotency_created_idx ON zapjobs.sse_idempotency (created_at);
