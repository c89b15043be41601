-- Current state of every zapjobs-sse object, trigger bodies included: zapjobs_sse/db/schema.sql
--
-- The publication of the WAL feed (`serve --feed wal`): the inserts, updates and deletes
-- of the tables the dashboard shows, which each server process decodes with pgoutput
-- from a temporary replication slot of its own. A publication costs the writers nothing:
-- nothing is decoded unless a slot reads it.
--
-- Adding a table to a publication needs the ownership of the table: where zapjobs-sse
-- does not own ZapJobs' tables, nothing is created here (the notify feed does not need
-- it), and `serve --feed wal` refuses to start with the statement to run as their owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'zapjobs_sse') THEN
        CREATE PUBLICATION zapjobs_sse FOR TABLE
            zapjobs.definitions, zapjobs.runs, zapjobs.logs, zapjobs.heartbeats,
            zapjobs.dead_letter;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'zapjobs-sse: publication zapjobs_sse not created: %', SQLERRM;
END $$;
