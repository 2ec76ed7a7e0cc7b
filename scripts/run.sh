#!/usr/bin/env bash
# scripts/run.sh - what `make run` does: find or provide PostgreSQL (scripts/postgres.sh),
# create the `iamd` database on it when IAMD_DATABASE_URL is not set, build iamd and run
# `iamd serve` (migrations and the first bootstrap happen at start; the first admin API key
# is printed once). Extra arguments go to `iamd`, e.g. `make run ARGS="--config iamd.yaml"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${IAMD_DATABASE_URL:-}" ]; then
    admin=$(scripts/postgres.sh)
    psql=$(command -v psql || ls -1d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$psql" ]; then
        echo "run: psql not found; install postgresql-client or set IAMD_DATABASE_URL" >&2
        exit 1
    fi
    if [ "$("$psql" "$admin" -Atc "SELECT 1 FROM pg_database WHERE datname = 'iamd'")" != 1 ]; then
        "$psql" "$admin" -qc "CREATE DATABASE iamd" >&2
        echo "run: created database iamd" >&2
    fi
    export IAMD_DATABASE_URL="${admin%/*}/iamd"
fi

cargo build --quiet --bin iamd
exec target/debug/iamd "$@" serve
