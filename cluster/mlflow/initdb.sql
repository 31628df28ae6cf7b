-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d).
-- MLflow's tracking store and its basic-auth user store both keep an `alembic_version` table, so
-- the users live in a database of their own.
CREATE DATABASE mlflow_auth;
