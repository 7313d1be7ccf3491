-- The project's role and databases. Idempotent; run by scripts/stack/postgres.sh and, in
-- docker-compose, by the postgres image's docker-entrypoint-initdb.d.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anineplus') THEN
    CREATE ROLE anineplus LOGIN SUPERUSER PASSWORD 'anineplus';
  END IF;
END $$;
-- anineplus: the API's domain and outbox. anineplus_registry: the schema registry.
SELECT 'CREATE DATABASE anineplus OWNER anineplus'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'anineplus')\gexec
SELECT 'CREATE DATABASE anineplus_registry OWNER anineplus'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'anineplus_registry')\gexec
