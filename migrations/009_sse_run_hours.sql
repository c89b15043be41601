-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- Hourly rollups of the finished runs, for the insights of ranges longer than a day (7 and
-- 30 days): per job type and hour, the runs completed, failed and cancelled, and a
-- histogram of the durations of the completed and failed ones. The server rebuilds them
-- from zapjobs.runs when it starts and recomputes the hours its change feed shows moving;
-- each write recomputes whole hours from the table, so a restart or a second replica
-- never counts a run twice. The executors' tables gain nothing (no trigger, no column).

-- A duration's histogram bucket (NULL for none): 0 for under 1 ms, else k for
-- [1.1^(k-1), 1.1^k) ms, so that the bucket's geometric middle is within 4.9 % of every
-- duration in it. Not STRICT, so that PostgreSQL inlines it into the queries.
CREATE OR REPLACE FUNCTION zapjobs.sse_duration_bucket_v1(ms integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 1 THEN 0 ELSE 1 + floor(ln(ms) / 0.09531017980432486)::integer END
$$;

-- The rollup rows of [since, until), computed from zapjobs.runs (of one job type, or all
-- of them when only_job_type is NULL): what the table below holds, hour for hour.
CREATE OR REPLACE FUNCTION zapjobs.sse_run_hours_v1(
    since timestamp, until timestamp, only_job_type text
) RETURNS TABLE (
    job_type_id varchar, hour timestamp, completed integer, failed integer,
    cancelled integer, buckets integer[], counts integer[]
)
LANGUAGE sql STABLE AS $$
    WITH per_bucket AS (
        SELECT r.job_type_id, date_trunc('hour', r.completed_at) AS hour,
               CASE WHEN r.status IN (3, 4)
                    THEN zapjobs.sse_duration_bucket_v1(r.duration_ms) END AS bucket,
               count(*) FILTER (WHERE r.status = 3) AS completed,
               count(*) FILTER (WHERE r.status = 4) AS failed,
               count(*) FILTER (WHERE r.status = 5) AS cancelled
        FROM zapjobs.runs AS r
        WHERE r.completed_at >= since AND r.completed_at < until
          AND r.status IN (3, 4, 5)
          AND (only_job_type IS NULL OR r.job_type_id = only_job_type)
        GROUP BY 1, 2, 3
    )
    SELECT b.job_type_id, b.hour, sum(b.completed)::integer, sum(b.failed)::integer,
           sum(b.cancelled)::integer,
           coalesce(array_agg(b.bucket ORDER BY b.bucket) FILTER (WHERE b.bucket IS NOT NULL),
                    '{}'),
           coalesce(array_agg((b.completed + b.failed)::integer ORDER BY b.bucket)
                        FILTER (WHERE b.bucket IS NOT NULL), '{}')
    FROM per_bucket AS b
    GROUP BY b.job_type_id, b.hour
$$;

CREATE TABLE IF NOT EXISTS zapjobs.sse_run_hours (
    job_type_id VARCHAR(255) NOT NULL,
    hour TIMESTAMP NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    buckets INTEGER[] NOT NULL,
    counts INTEGER[] NOT NULL,
    PRIMARY KEY (job_type_id, hour)
);

CREATE INDEX IF NOT EXISTS sse_run_hours_hour_idx ON zapjobs.sse_run_hours (hour);
