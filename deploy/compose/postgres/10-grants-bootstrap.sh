#!/bin/sh
# Postgres image init script (docker-entrypoint-initdb.d): runs once, when the data volume is
# new. Applies deploy/postgres/bootstrap.sql (mounted at /grants/bootstrap.sql) with the
# services' passwords from the compose secrets, and creates the login role Temporal's
# auto-setup uses to create and migrate its databases `temporal` and `temporal_visibility`.
set -eu

secret() { cat "/run/secrets/$1"; }

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v pw_intake="$(secret grants_pg_password_intake)" \
  -v pw_review="$(secret grants_pg_password_review)" \
  -v pw_payments="$(secret grants_pg_password_payments)" \
  -v pw_notifications="$(secret grants_pg_password_notifications)" \
  -f /grants/bootstrap.sql

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v pw_temporal="$(secret temporal_db_password)" <<'SQL'
SELECT 'CREATE ROLE temporal LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'temporal')
\gexec
ALTER ROLE temporal LOGIN NOSUPERUSER CREATEDB NOCREATEROLE PASSWORD :'pw_temporal';
SQL
