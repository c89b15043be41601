-- What `serve --feed wal` needs of the database, read once at start (db/replication.py).

-- name: wal_feed_requirements --
-- The REPLICATION attribute, or what the managed services grant instead (Amazon RDS and
-- Aurora: membership of rds_replication); free slots and WAL senders; the publication.
SELECT current_setting('wal_level') AS wal_level,
       current_user AS "user",
       (r.rolreplication OR r.rolsuper OR EXISTS (
           SELECT FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid
           WHERE g.rolname = 'rds_replication' AND m.member = r.oid)) AS can_replicate,
       current_setting('max_replication_slots')::int AS max_replication_slots,
       (SELECT count(*) FROM pg_replication_slots)::int AS slots_used,
       current_setting('max_wal_senders')::int AS max_wal_senders,
       (SELECT count(*) FROM pg_stat_replication)::int AS senders_used,
       EXISTS (SELECT FROM pg_publication WHERE pubname = %(publication)s) AS publication
FROM pg_roles AS r WHERE r.rolname = current_user
