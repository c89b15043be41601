-- The notification triggers of the notify feed, as migrations/002 made them (their
-- current definitions are in db/schema.sql): put back by `migrate` where `migrate
-- --no-triggers` removed them, for databases fed by the WAL (db/migrate.py).

-- name: notify_triggers_present --
SELECT count(*)::int AS present FROM pg_trigger
WHERE NOT tgisinternal
  AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'zapjobs'::regnamespace)
  AND tgname IN (
    'sse_runs_inserted_v1',
    'sse_run_updated_v1',
    'sse_runs_deleted_v1',
    'sse_logs_inserted_v1',
    'sse_logs_deleted_v1',
    'sse_heartbeat_written_v1',
    'sse_heartbeat_deleted_v1',
    'sse_definitions_changed_v1',
    'sse_dead_letter_changed_v1')

-- name: install_notify_triggers --
CREATE OR REPLACE TRIGGER sse_runs_inserted_v1
    AFTER INSERT ON zapjobs.runs
    REFERENCING NEW TABLE AS sse_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_runs_inserted_v1();

CREATE OR REPLACE TRIGGER sse_run_updated_v1
    AFTER UPDATE ON zapjobs.runs
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.* AND zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_run_updated_v1();

CREATE OR REPLACE TRIGGER sse_runs_deleted_v1
    AFTER DELETE ON zapjobs.runs
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

CREATE OR REPLACE TRIGGER sse_logs_inserted_v1
    AFTER INSERT ON zapjobs.logs
    REFERENCING NEW TABLE AS sse_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_logs_inserted_v1();

CREATE OR REPLACE TRIGGER sse_logs_deleted_v1
    AFTER DELETE ON zapjobs.logs
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

CREATE OR REPLACE TRIGGER sse_heartbeat_written_v1
    AFTER INSERT OR UPDATE ON zapjobs.heartbeats
    FOR EACH ROW
    WHEN (zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_heartbeat_changed_v1();

CREATE OR REPLACE TRIGGER sse_heartbeat_deleted_v1
    AFTER DELETE ON zapjobs.heartbeats
    FOR EACH ROW
    WHEN (zapjobs.sse_notify_enabled_v1())
    EXECUTE FUNCTION zapjobs.sse_heartbeat_changed_v1();

CREATE OR REPLACE TRIGGER sse_definitions_changed_v1
    AFTER INSERT OR UPDATE OR DELETE ON zapjobs.definitions
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

CREATE OR REPLACE TRIGGER sse_dead_letter_changed_v1
    AFTER INSERT OR UPDATE OR DELETE ON zapjobs.dead_letter
    FOR EACH STATEMENT EXECUTE FUNCTION zapjobs.sse_table_changed_v1();

-- name: drop_notify_triggers --
DROP TRIGGER IF EXISTS sse_runs_inserted_v1 ON zapjobs.runs;
DROP TRIGGER IF EXISTS sse_run_updated_v1 ON zapjobs.runs;
DROP TRIGGER IF EXISTS sse_runs_deleted_v1 ON zapjobs.runs;
DROP TRIGGER IF EXISTS sse_logs_inserted_v1 ON zapjobs.logs;
DROP TRIGGER IF EXISTS sse_logs_deleted_v1 ON zapjobs.logs;
DROP TRIGGER IF EXISTS sse_heartbeat_written_v1 ON zapjobs.heartbeats;
DROP TRIGGER IF EXISTS sse_heartbeat_deleted_v1 ON zapjobs.heartbeats;
DROP TRIGGER IF EXISTS sse_definitions_changed_v1 ON zapjobs.definitions;
DROP TRIGGER IF EXISTS sse_dead_letter_changed_v1 ON zapjobs.dead_letter;
