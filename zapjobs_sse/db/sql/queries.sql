-- Every statement the server runs. Each starts with a `-- name: NAME --` line; database.py
-- loads them by name. Parameters use the driver's %(name)s placeholders.

-- name: notification_queue_usage --
SELECT pg_notification_queue_usage() AS usage

-- name: stats --
-- Exact counts where they are cheap (indexed, bounded by live work or by today's
-- volume); whole-table totals are exact below %(exact_limit)s rows and otherwise
-- the statistics collector's live-tuple estimate, so the cost never grows with
-- the history.
WITH estimate AS (
    SELECT relname, n_live_tup FROM pg_stat_user_tables
    WHERE schemaname = 'zapjobs' AND relname IN ('runs', 'logs')
), today AS (
    SELECT
        count(*) FILTER (WHERE status = 3) AS completed,
        count(*) FILTER (WHERE status = 4) AS failed
    FROM zapjobs.runs
    WHERE completed_at >= date_trunc('day', now() AT TIME ZONE 'utc')
      AND completed_at IS NOT NULL
)
SELECT
    (SELECT count(*) FROM zapjobs.definitions) AS total_jobs,
    CASE WHEN coalesce((SELECT n_live_tup FROM estimate WHERE relname = 'runs'), 0) >= %(exact_limit)s
        THEN (SELECT n_live_tup FROM estimate WHERE relname = 'runs')
        ELSE (SELECT count(*) FROM zapjobs.runs) END AS total_runs,
    coalesce((SELECT n_live_tup FROM estimate WHERE relname = 'runs'), 0) >= %(exact_limit)s
        AS total_runs_estimated,
    (SELECT count(*) FROM zapjobs.runs WHERE status = 0) AS pending_runs,
    (SELECT count(*) FROM zapjobs.runs WHERE status = 2) AS running_runs,
    (SELECT completed FROM today) AS completed_today,
    (SELECT failed FROM today) AS failed_today,
    (SELECT count(*) FROM zapjobs.heartbeats
        WHERE timestamp > (now() AT TIME ZONE 'utc') - interval '2 minutes') AS active_workers,
    CASE WHEN coalesce((SELECT n_live_tup FROM estimate WHERE relname = 'logs'), 0) >= %(exact_limit)s
        THEN (SELECT n_live_tup FROM estimate WHERE relname = 'logs')
        ELSE (SELECT count(*) FROM zapjobs.logs) END AS total_log_entries,
    coalesce((SELECT n_live_tup FROM estimate WHERE relname = 'logs'), 0) >= %(exact_limit)s
        AS total_log_entries_estimated,
    (SELECT count(*) FROM zapjobs.dead_letter WHERE status = 0) AS dead_letter_count

-- name: queues --
-- Every queue of a definition or of a Pending or Running run, by name. Pending is status
-- 0 alone (what the Pending card counts): Scheduled runs are not due, and ZapJobs puts a
-- due AwaitingRetry run back to Pending. A Pending run is due since its scheduled_at when
-- that is later than its creation and past, since its creation otherwise: never before
-- its creation, so the oldest due run is among those created no later than the moment
-- the first-created one became due (one row of idx_runs_pending, usually). The counts
-- read live work only (idx_runs_pending, idx_runs_status), never the history.
WITH clock AS (
    SELECT now() AT TIME ZONE 'utc' AS now
), pending AS (
    SELECT queue, count(*) AS pending
    FROM zapjobs.runs
    WHERE status = 0
    GROUP BY queue
), oldest AS (
    SELECT p.queue, (
        SELECT min(CASE WHEN r.scheduled_at > r.created_at AND r.scheduled_at <= clock.now
                        THEN r.scheduled_at ELSE r.created_at END)
        FROM zapjobs.runs AS r
        WHERE r.status = 0 AND r.queue = p.queue AND r.created_at <= first.due
    ) AS since
    FROM pending AS p, clock
    CROSS JOIN LATERAL (
        SELECT CASE WHEN f.scheduled_at > f.created_at AND f.scheduled_at <= clock.now
                    THEN f.scheduled_at ELSE f.created_at END AS due
        FROM zapjobs.runs AS f
        WHERE f.status = 0 AND f.queue = p.queue
        ORDER BY f.created_at
        LIMIT 1
    ) AS first
), running AS (
    SELECT queue, count(*) AS running
    FROM zapjobs.runs
    WHERE status = 2
    GROUP BY queue
), names AS (
    SELECT queue FROM zapjobs.definitions
    UNION SELECT queue FROM pending
    UNION SELECT queue FROM running
)
SELECT n.queue,
       coalesce(p.pending, 0) AS pending,
       coalesce(r.running, 0) AS running,
       o.since AS oldest_pending_since,
       CASE WHEN o.since IS NOT NULL THEN greatest(0, extract(
           epoch FROM (SELECT now FROM clock) - o.since))::float8
       END AS oldest_pending_age_seconds
FROM names AS n
LEFT JOIN pending AS p USING (queue)
LEFT JOIN oldest AS o USING (queue)
LEFT JOIN running AS r USING (queue)
ORDER BY n.queue

-- name: runs_by_ids --
SELECT * FROM zapjobs.runs WHERE id = ANY(%(ids)s::uuid[])

-- name: run_by_id --
SELECT * FROM zapjobs.runs WHERE id = %(id)s::uuid

-- name: run_ids_in_range --
-- The go-to-run box's id prefix as a range of the primary key (uuid order is byte
-- order, so a hex prefix padded with 0s and with fs bounds exactly the ids it starts):
-- an index range scan whatever the number of runs. Two rows are enough to say that a
-- prefix is ambiguous.
SELECT id FROM zapjobs.runs
WHERE id >= %(low)s::uuid AND id <= %(high)s::uuid
ORDER BY id
LIMIT 2

-- name: list_runs --
-- Keyset pagination, newest first: rows strictly after the (created_at, id) key.
SELECT * FROM zapjobs.runs
WHERE (%(status)s::int IS NULL OR status = %(status)s::int)
  AND (%(job_type)s::text IS NULL OR job_type_id = %(job_type)s::text)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(before_created)s::timestamp IS NULL
       OR (created_at, id) < (%(before_created)s::timestamp, %(before_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s

-- name: search_window_start --
-- The key of the window-th newest run (none when there are fewer runs): an index-only
-- walk of sse_runs_created_idx. Read apart from search_runs so that the planner of the
-- search knows how many rows its window holds.
SELECT created_at, id FROM zapjobs.runs
ORDER BY created_at DESC, id DESC
OFFSET %(window)s - 1 LIMIT 1

-- name: search_runs --
-- The runs search, newest first, keyset-paged like list_runs. Two branches, each on its
-- own index, merged by key: the text (and a short id prefix) among the runs from the
-- window's oldest key on (search_window_start), read newest first; a long id prefix
-- over the primary key, at any age. The driver interpolates the parameters, so the
-- planner drops the branch and the text test a search does not use.
WITH found AS (
    (SELECT r.created_at, r.id FROM zapjobs.runs r
     WHERE (r.created_at, r.id) >= (%(start_created)s::timestamp, %(start_id)s::uuid)
       AND (%(before_created)s::timestamp IS NULL
            OR (r.created_at, r.id) < (%(before_created)s::timestamp, %(before_id)s::uuid))
       AND (%(status)s::int IS NULL OR r.status = %(status)s::int)
       AND (%(job_type)s::text IS NULL OR r.job_type_id = %(job_type)s::text)
       AND (%(queue)s::text IS NULL OR r.queue = %(queue)s::text)
       -- A column holds the text when, folded to lower case, it holds the text's longest
       -- ASCII piece folded A-Z alone (the "C" lower: a byte loop, several times faster
       -- than the locale's), and, for text beyond ASCII, the whole text as the locale's
       -- lower() folds both: that costs only where the piece was found.
       AND ((r.id >= %(low)s::uuid AND r.id <= %(high)s::uuid)
            OR (strpos(lower(r.error_message COLLATE "C"), lower(%(piece)s COLLATE "C")) > 0
                AND (%(ascii)s OR strpos(lower(r.error_message), lower(%(text)s)) > 0))
            OR (strpos(lower(r.error_type COLLATE "C"), lower(%(piece)s COLLATE "C")) > 0
                AND (%(ascii)s OR strpos(lower(r.error_type), lower(%(text)s)) > 0))
            OR (strpos(lower(r.input_json COLLATE "C"), lower(%(piece)s COLLATE "C")) > 0
                AND (%(ascii)s OR strpos(lower(r.input_json), lower(%(text)s)) > 0)))
     ORDER BY r.created_at DESC, r.id DESC
     LIMIT %(limit)s)
    UNION
    (SELECT r.created_at, r.id FROM zapjobs.runs r
     WHERE %(ids_everywhere)s
       AND r.id >= %(low)s::uuid AND r.id <= %(high)s::uuid
       AND (%(before_created)s::timestamp IS NULL
            OR (r.created_at, r.id) < (%(before_created)s::timestamp, %(before_id)s::uuid))
       AND (%(status)s::int IS NULL OR r.status = %(status)s::int)
       AND (%(job_type)s::text IS NULL OR r.job_type_id = %(job_type)s::text)
       AND (%(queue)s::text IS NULL OR r.queue = %(queue)s::text)
     ORDER BY r.created_at DESC, r.id DESC
     LIMIT %(limit)s)
)
SELECT r.* FROM found JOIN zapjobs.runs r ON r.id = found.id
ORDER BY found.created_at DESC, found.id DESC
LIMIT %(limit)s

-- name: logs_after --
SELECT id, run_id, level, message, category, context_json, duration_ms, exception, timestamp
FROM zapjobs.logs
WHERE run_id = %(run_id)s::uuid
  AND (timestamp, id) > (%(after_ts)s::timestamp, %(after_id)s::uuid)
  AND (%(min_level)s::int IS NULL OR level >= %(min_level)s::int)
ORDER BY timestamp, id
LIMIT %(limit)s

-- name: log_tail --
SELECT timestamp, id FROM zapjobs.logs
WHERE run_id = %(run_id)s::uuid
ORDER BY timestamp DESC, id DESC
LIMIT 1

-- name: workers_by_ids --
SELECT *, extract(epoch FROM (now() AT TIME ZONE 'utc') - timestamp)::float8 AS age_seconds
FROM zapjobs.heartbeats WHERE worker_id = ANY(%(ids)s::text[])

-- name: all_workers --
SELECT *, extract(epoch FROM (now() AT TIME ZONE 'utc') - timestamp)::float8 AS age_seconds
FROM zapjobs.heartbeats ORDER BY worker_id

-- name: list_jobs --
SELECT * FROM zapjobs.definitions ORDER BY job_type_id

-- name: list_dead_letter --
SELECT * FROM zapjobs.dead_letter
WHERE (%(status)s::int IS NULL OR status = %(status)s::int)
  AND (%(job_type)s::text IS NULL OR job_type_id = %(job_type)s::text)
  AND (%(before_moved)s::timestamp IS NULL
       OR (moved_at, id) < (%(before_moved)s::timestamp, %(before_id)s::uuid))
ORDER BY moved_at DESC, id DESC
LIMIT %(limit)s

-- name: count_pending_dead_letter --
-- The Pending entries a bulk action of the dead-letter page would change (its filter).
SELECT count(*) AS n FROM zapjobs.dead_letter
WHERE status = 0 AND (%(job_type)s::text IS NULL OR job_type_id = %(job_type)s::text)
