#!/usr/bin/env bash
# One login role and one database per MLife service, plus one for MLflow's backend store.
#
# Mounted into /docker-entrypoint-initdb.d/ of the postgres image, so it runs once, on the first start
# of an empty data directory, as the superuser. Each password comes from POSTGRES_<NAME>_PASSWORD
# (e.g. POSTGRES_BAM_PASSWORD); a missing one stops the initialisation. Safe to run again: existing
# roles get their password reset, existing databases are kept.
set -euo pipefail

DATABASES=(bam dam mtt msm gateway mlflow)
# Full-text search in the services uses trigram indexes; MLflow does not need the extension.
TRGM_DATABASES=(bam dam mtt msm gateway)

superuser="${POSTGRES_USER:-postgres}"
maintenance_db="${POSTGRES_DB:-$superuser}"

# Check every password before creating anything, so a half-configured run changes nothing.
missing=()
for name in "${DATABASES[@]}"; do
    var="POSTGRES_${name^^}_PASSWORD"
    [[ -n "${!var:-}" ]] || missing+=("$var")
done
if ((${#missing[@]})); then
    echo "init.sh: set ${missing[*]} (see .env.example)" >&2
    exit 1
fi

for name in "${DATABASES[@]}"; do
    var="POSTGRES_${name^^}_PASSWORD"
    # The name and password travel as psql variables and are quoted by format(%I, %L): no SQL injection.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$superuser" --dbname "$maintenance_db" \
         --set=name="$name" --set=password="${!var}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SELECT format('GRANT ALL ON DATABASE %I TO %I', :'name', :'name') \gexec
SQL
    echo "init.sh: role and database '$name' ready"
done

for name in "${TRGM_DATABASES[@]}"; do
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$superuser" --dbname "$name" \
         -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
done
