-- The insights of a job type (or of all of them when %(job_type)s is NULL) over a range
-- [%(since)s, %(until)s) of completion times, and the hourly rollups behind the long
-- ranges (migration 009). Finished means Completed (3), Failed (4) or Cancelled (5);
-- durations are those of the completed and failed runs.

-- name: insights_exact --
-- Counts and exact duration percentiles (percentile_cont) per bucket of %(width)s seconds
-- (buckets aligned on 2000-01-01, a midnight, as Python's are on the epoch) and, in the
-- row whose start is NULL, over the whole range. Up to a day of one job type is an
-- index-only scan of sse_runs_job_type_completed_idx.
SELECT date_bin(make_interval(secs => %(width)s), completed_at, TIMESTAMP '2000-01-01') AS start,
       count(*) FILTER (WHERE status = 3) AS completed,
       count(*) FILTER (WHERE status = 4) AS failed,
       count(*) FILTER (WHERE status = 5) AS cancelled,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status IN (3, 4)) AS durations
FROM zapjobs.runs
WHERE completed_at >= %(since)s AND completed_at < %(until)s
  AND status IN (3, 4, 5)
  AND (%(job_type)s::text IS NULL OR job_type_id = %(job_type)s::text)
GROUP BY GROUPING SETS ((1), ())

-- name: insights_hours --
-- Counts and merged duration histograms per bucket of %(width)s seconds (a whole number
-- of hours): the rollups for the whole hours from %(first_hour)s to %(cut)s, the runs
-- table for the part of an hour before them and from %(cut)s on (the hours that may
-- still be moving).
WITH hours AS (
    SELECT h.hour, h.completed, h.failed, h.cancelled, h.buckets, h.counts
    FROM zapjobs.sse_run_hours AS h
    WHERE h.hour >= %(first_hour)s AND h.hour < %(cut)s
      AND (%(job_type)s::text IS NULL OR h.job_type_id = %(job_type)s::text)
    UNION ALL
    SELECT l.hour, l.completed, l.failed, l.cancelled, l.buckets, l.counts
    FROM zapjobs.sse_run_hours_v1(%(since)s, %(first_hour)s, %(job_type)s::text) AS l
    UNION ALL
    SELECT l.hour, l.completed, l.failed, l.cancelled, l.buckets, l.counts
    FROM zapjobs.sse_run_hours_v1(%(cut)s, %(until)s, %(job_type)s::text) AS l
), binned AS (
    SELECT date_bin(make_interval(secs => %(width)s), hour, TIMESTAMP '2000-01-01') AS start, *
    FROM hours
), histogram AS (
    SELECT b.start, u.bucket, sum(u.n)::integer AS n
    FROM binned AS b, unnest(b.buckets, b.counts) AS u(bucket, n)
    WHERE %(durations)s  -- the overview chart shows counts only
    GROUP BY 1, 2
), totals AS (
    SELECT start, sum(completed)::integer AS completed, sum(failed)::integer AS failed,
           sum(cancelled)::integer AS cancelled
    FROM binned GROUP BY 1
)
SELECT t.start, t.completed, t.failed, t.cancelled,
       coalesce(array_agg(h.bucket ORDER BY h.bucket) FILTER (WHERE h.bucket IS NOT NULL),
                '{}') AS buckets,
       coalesce(array_agg(h.n ORDER BY h.bucket) FILTER (WHERE h.bucket IS NOT NULL), '{}')
           AS counts
FROM totals AS t
LEFT JOIN histogram AS h ON h.start = t.start
GROUP BY t.start, t.completed, t.failed, t.cancelled
ORDER BY t.start

-- name: insights_top_errors --
-- The error types of a job type's failed runs in the range, most frequent first, each
-- with its latest run (an index-only count, then one lookup per error type).
WITH grouped AS (
    SELECT error_type, count(*) AS n, max(completed_at) AS last_seen
    FROM zapjobs.runs
    WHERE job_type_id = %(job_type)s AND completed_at >= %(since)s
      AND completed_at < %(until)s AND status = 4
    GROUP BY error_type
    ORDER BY n DESC, last_seen DESC
    LIMIT %(limit)s
)
SELECT g.error_type, g.n AS count, g.last_seen, latest.id AS run_id, latest.error_message
FROM grouped AS g
CROSS JOIN LATERAL (
    SELECT r.id, r.error_message FROM zapjobs.runs AS r
    WHERE r.job_type_id = %(job_type)s AND r.completed_at = g.last_seen AND r.status = 4
      AND r.error_type IS NOT DISTINCT FROM g.error_type
    ORDER BY r.id DESC
    LIMIT 1
) AS latest
ORDER BY g.n DESC, g.last_seen DESC

-- name: job_type_has_runs --
SELECT EXISTS (SELECT FROM zapjobs.runs WHERE job_type_id = %(job_type)s) AS found

-- name: lock_run_hours --
-- Replicas write the rollups one at a time, each statement seeing what the other
-- committed before it (the lock is held until the transaction ends).
SELECT pg_advisory_xact_lock(hashtext('zapjobs_sse.run_hours')) AS locked

-- name: recompute_run_hours --
-- The rollup rows of the given hours, every job type, recomputed from zapjobs.runs:
-- written whole (never incremented), so a second writer cannot count a run twice.
WITH hours AS (
    SELECT DISTINCT date_trunc('hour', hour) AS hour
    FROM unnest(%(hours)s::timestamp[]) AS hour
), computed AS (
    SELECT c.* FROM hours AS k,
        zapjobs.sse_run_hours_v1(k.hour, k.hour + interval '1 hour', NULL) AS c
), removed AS (
    DELETE FROM zapjobs.sse_run_hours AS s
    WHERE s.hour IN (SELECT hour FROM hours)
      AND NOT EXISTS (
          SELECT FROM computed AS c WHERE c.job_type_id = s.job_type_id AND c.hour = s.hour
      )
)
INSERT INTO zapjobs.sse_run_hours AS s (
    job_type_id, hour, completed, failed, cancelled, buckets, counts
)
SELECT * FROM computed
ON CONFLICT (job_type_id, hour) DO UPDATE SET
    completed = excluded.completed,
    failed = excluded.failed,
    cancelled = excluded.cancelled,
    buckets = excluded.buckets,
    counts = excluded.counts

-- name: rollup_work_mem --
-- A month of runs grouped by job type, hour and bucket: hashed in memory, not spilled.
SET LOCAL work_mem = '64MB'

-- name: rewrite_run_hours --
-- The rollup rows of every hour in [%(since)s, %(until)s) (%(since)s a whole hour),
-- recomputed from zapjobs.runs in one pass: the rebuild at start and after a lost feed.
WITH computed AS (
    SELECT * FROM zapjobs.sse_run_hours_v1(%(since)s, %(until)s, NULL)
), removed AS (
    DELETE FROM zapjobs.sse_run_hours AS s
    WHERE s.hour >= %(since)s AND s.hour < %(until)s
      AND NOT EXISTS (
          SELECT FROM computed AS c WHERE c.job_type_id = s.job_type_id AND c.hour = s.hour
      )
)
INSERT INTO zapjobs.sse_run_hours AS s (
    job_type_id, hour, completed, failed, cancelled, buckets, counts
)
SELECT * FROM computed
ON CONFLICT (job_type_id, hour) DO UPDATE SET
    completed = excluded.completed,
    failed = excluded.failed,
    cancelled = excluded.cancelled,
    buckets = excluded.buckets,
    counts = excluded.counts

-- name: forget_run_hours --
DELETE FROM zapjobs.sse_run_hours WHERE hour < %(before)s
