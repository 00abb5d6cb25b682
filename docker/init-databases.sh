#!/bin/sh
# Run by the postgres image once, when it initialises an empty data volume. POSTGRES_DB (Optuna's
# database) exists by then; this creates MLflow's (MLFLOW_DB) beside it, owned by POSTGRES_USER.
# Names come from the environment (see docker-compose.yml and .env.example); nothing is printed.
set -e
: "${MLFLOW_DB:?MLFLOW_DB is not set}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=db="$MLFLOW_DB" --set=owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
