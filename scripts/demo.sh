#!/usr/bin/env bash
# make demo: start a throwaway PostgreSQL in a temp dir (unix socket only, nothing on the
# network), run the embedded example migrations through update, status and check, then stop it
# and delete everything. Needs PostgreSQL server binaries (Debian: apt-get install postgresql).
set -euo pipefail

bin=$(realpath "${1:-bin/schemahook}")
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [[ -z "$pgbin" || ! -x "$pgbin/initdb" ]]; then
  echo "demo: PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql) or set PGBIN" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/schemahook-demo.XXXXXX")
# PostgreSQL refuses to run as root: run it as the postgres user, who must own the directory.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres: "$dir"
cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

echo "== starting a throwaway PostgreSQL in $dir"
as_pg "$pgbin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off" start >/dev/null
as_pg "$pgbin/createdb" -h "$dir" -U postgres demo

export PGHOST="$dir" PGUSER=postgres PGDATABASE=demo SCHEMAHOOK_LOG_FORMAT=text
unset DATABASE_URL SCHEMAHOOK_DATABASE_URL PGPASSWORD PGPORT || true

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
echo; echo "== done; stopping PostgreSQL and removing $dir"
