#!/usr/bin/env bash
# make demo: start a throwaway PostgreSQL in a temp dir (unix socket only, nothing on the
# network), run the example migrations (migrations/) through update, status and check, then stop it
# and delete everything. Needs PostgreSQL server binaries (Debian: apt-get install postgresql).
set -euo pipefail

bin=$(realpath "${1:-bin/schemahook}")
# The binary carries no migrations: the demo points it at the example schema.
export SCHEMAHOOK_MIGRATIONS="$(cd "$(dirname "$0")/.." && pwd)/migrations"
source "$(dirname "$0")/lib/pg.sh"

pg_start demo demo
echo "== starting a throwaway PostgreSQL in $pg_dir"
export SCHEMAHOOK_LOG_FORMAT=text

echo; echo "== schemahook check   (empty database: exits 8, schema not current)"
set +e; "$bin" check; code=$?; set -e
echo "exit code $code"
[[ $code == 8 ]] || { echo "demo: expected exit code 8 from check on an empty database" >&2; exit 1; }

echo; echo "== schemahook plan"
"$bin" plan | head -n 20
echo "   ..."

echo; echo "== schemahook update   (initializes the empty database)"
"$bin" update

echo; echo "== schemahook update   (again: a no-op)"
"$bin" update

echo; echo "== schemahook status"
"$bin" status

echo; echo "== schemahook check"
"$bin" check
echo "exit code $?"
echo; echo "== done; stopping PostgreSQL and removing $pg_dir"
