-- Database `grants`, one schema and one login role per service, each role confined to its
-- own schema. Idempotent: run by `./dev up` as the Postgres superuser on every start.
-- psql variables: pw_intake, pw_review, pw_payments, pw_notifications.
\set ON_ERROR_STOP on

SELECT 'CREATE DATABASE grants' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'grants')
\gexec

SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY['intake', 'review', 'payments', 'notifications']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
\gexec

ALTER ROLE intake        LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw_intake';
ALTER ROLE review        LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw_review';
ALTER ROLE payments      LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw_payments';
ALTER ROLE notifications LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw_notifications';

REVOKE ALL ON DATABASE grants FROM PUBLIC;
GRANT CONNECT ON DATABASE grants TO intake, review, payments, notifications;

\connect grants

-- Nobody gets anything by default: no objects in `public`, no access to another's schema.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS intake        AUTHORIZATION intake;
CREATE SCHEMA IF NOT EXISTS review        AUTHORIZATION review;
CREATE SCHEMA IF NOT EXISTS payments      AUTHORIZATION payments;
CREATE SCHEMA IF NOT EXISTS notifications AUTHORIZATION notifications;
REVOKE ALL ON SCHEMA intake, review, payments, notifications FROM PUBLIC;
ALTER ROLE intake        IN DATABASE grants SET search_path = intake;
ALTER ROLE review        IN DATABASE grants SET search_path = review;
ALTER ROLE payments      IN DATABASE grants SET search_path = payments;
ALTER ROLE notifications IN DATABASE grants SET search_path = notifications;
