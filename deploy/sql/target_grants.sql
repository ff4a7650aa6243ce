-- target_grants.sql — a least-privilege role for walbridge on the TARGET database.
-- Run as a superuser in the target database:
--   psql "$TARGET_ADMIN_URL" -v password='...' [-v schema=public] -f deploy/sql/target_grants.sql
--
-- walbridge writes the replicated tables (INSERT/UPDATE/DELETE/TRUNCATE, SELECT
-- for the diff), keeps its state (applied LSN, checkpoints) in its own schema
-- "walbridge" (the config's state_schema; it creates its tables there), and
-- sets session_replication_role = replica for its writes so that the target's
-- triggers and FK checks do not fire for rows that are already consistent in
-- the source (PostgreSQL 15+: GRANT SET ON PARAMETER).
--
-- Supabase as the target: the postgres role is not a superuser, but Supabase
-- lets it SET session_replication_role (a plain SET works; set_config does not),
-- and a role created here could not.  Connect walbridge as postgres (direct
-- connection on port 5432 or the session-mode pooler, never port 6543) and run
-- only the CREATE SCHEMA part below if you want the state schema pre-created.
-- Re-runnable.
\set ON_ERROR_STOP on
\if :{?schema}
\else
\set schema public
\endif

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'walbridge') AS create_role \gset
-- BYPASSRLS: row level security policies (Supabase tables usually have them)
-- are for application users; a replica must see and write every row.
\if :create_role
CREATE ROLE walbridge LOGIN BYPASSRLS;
\else
ALTER ROLE walbridge LOGIN BYPASSRLS;
\endif
\if :{?password}
ALTER ROLE walbridge PASSWORD :'password';
\endif

GRANT CONNECT ON DATABASE :"DBNAME" TO walbridge;
-- Session TEMP tables: backfill's staging table, the stream's bulk staging and
-- its per-transaction table of deleted/re-keyed parent keys.  PUBLIC has this
-- by default; granted explicitly for databases that revoked it.
GRANT TEMPORARY ON DATABASE :"DBNAME" TO walbridge;
GRANT USAGE ON SCHEMA :"schema" TO walbridge;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA :"schema" TO walbridge;
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema"
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO walbridge;
-- uuid defaults and identity columns of the target tables.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA :"schema" TO walbridge;

-- walbridge's own state.
CREATE SCHEMA IF NOT EXISTS walbridge AUTHORIZATION walbridge;

-- Skip triggers and FK checks for walbridge's writes (PostgreSQL 15+).
GRANT SET ON PARAMETER session_replication_role TO walbridge;
