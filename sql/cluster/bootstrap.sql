-- bin/cluster: the service's role and database on a fresh Patroni cluster, run as the
-- superuser through HAProxy (so on the leader). Statements that take no parameters (CREATE ROLE,
-- CREATE DATABASE, ALTER ROLE) are built by format() on the server, then run.

-- name: role_ddl
SELECT format(
    CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %(role)s)
         THEN 'ALTER ROLE %%I LOGIN PASSWORD %%L'
         ELSE 'CREATE ROLE %%I LOGIN PASSWORD %%L' END,
    %(role)s::text, %(password)s::text) AS ddl;

-- name: database_ddl
SELECT format('CREATE DATABASE %%I OWNER %%I', %(dbname)s::text, %(role)s::text) AS ddl
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = %(dbname)s);

-- name: role_settings_ddl
-- What widgetsvc/db.py otherwise sends with each connection ("options"), which PgBouncer cannot
-- pass on: every session of the role in that database starts with these.
SELECT format('ALTER ROLE %%I IN DATABASE %%I SET %%s = %%L', %(role)s::text, %(dbname)s::text, name, value)
       AS ddl
FROM (VALUES ('statement_timeout', %(statement_timeout)s::text),
             ('TimeZone', 'UTC'),
             ('jit', 'off'),
             ('plan_cache_mode', 'force_generic_plan')) AS settings (name, value);

-- name: is_primary
-- bin/cluster waits until HAProxy routes to the leader: a connection through it that can write.
SELECT NOT pg_is_in_recovery() AS primary;
