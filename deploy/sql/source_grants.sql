-- source_grants.sql — a least-privilege role for walbridge on the SOURCE database.
-- Run as a superuser (or the database owner with CREATEROLE) in the source database:
--   psql "$SOURCE_ADMIN_URL" -v password='...' [-v schema=public] -f deploy/sql/source_grants.sql
--
-- walbridge only reads the source: SELECT on the replicated tables, plus the
-- REPLICATION attribute for the logical slot (wal2json) and the replication
-- connection that streams from it.  It never writes to a source table.
-- Also needed on the server (postgresql.conf, restart): wal_level = logical,
-- max_replication_slots / max_wal_senders >= 1 spare each, a sensible
-- max_slot_wal_keep_size, wal2json installed (and, on PostgreSQL 15.19+,
-- listed in output_plugin_libraries); pg_hba.conf must allow the role to connect
-- to the database AND to "replication" (e.g. `hostssl replication walbridge ...`).
-- Keyless tables need: ALTER TABLE ... REPLICA IDENTITY FULL;
--
-- Supabase as the source: wal2json is available; the postgres role already has
-- REPLICATION, or run this script as postgres to create a dedicated role.
-- Re-runnable.
\set ON_ERROR_STOP on
\if :{?schema}
\else
\set schema public
\endif

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'walbridge') AS create_role \gset
\if :create_role
CREATE ROLE walbridge LOGIN REPLICATION;
\else
ALTER ROLE walbridge LOGIN REPLICATION;
\endif
\if :{?password}
ALTER ROLE walbridge PASSWORD :'password';
\endif
-- Statements of the replication role must not be cut short by a global timeout.
ALTER ROLE walbridge SET statement_timeout = 0;
ALTER ROLE walbridge SET idle_in_transaction_session_timeout = 0;

GRANT CONNECT ON DATABASE :"DBNAME" TO walbridge;
GRANT USAGE ON SCHEMA :"schema" TO walbridge;
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO walbridge;
-- Tables created later by the schema owner running this script are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT SELECT ON TABLES TO walbridge;
