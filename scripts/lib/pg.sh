# Shared by scripts/demo.sh and scripts/diagram.sh: a throwaway PostgreSQL in a temp dir (unix
# socket only, nothing on the network), stopped and deleted when the calling script exits.
# Needs PostgreSQL server binaries (Debian: apt-get install postgresql) or PGBIN.
#
#   source "$(dirname "$0")/lib/pg.sh"
#   pg_start NAME DATABASE   # sets pg_dir; exports PGHOST, PGUSER, PGDATABASE for the database
#
# The caller keeps `set -euo pipefail`; the EXIT trap set here stops the server.

pg_find_bin() {
  pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
  if [[ -z "$pgbin" || ! -x "$pgbin/initdb" ]]; then
    echo "$1: PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql) or set PGBIN" >&2
    exit 1
  fi
}

# PostgreSQL refuses to run as root: run it as the postgres user, who must own the directory.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}

# pg_start NAME DATABASE: initialize and start the server, create DATABASE, point libpq at it.
pg_start() {
  local name=$1 db=$2
  pg_find_bin "$name"
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/schemahook-$name.XXXXXX")
  if [[ $(id -u) == 0 ]]; then chown postgres: "$pg_dir"; fi
  trap pg_cleanup EXIT
  as_pg "$pgbin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$pg_dir' -c fsync=off" start >/dev/null
  as_pg "$pgbin/createdb" -h "$pg_dir" -U postgres "$db"
  export PGHOST="$pg_dir" PGUSER=postgres PGDATABASE="$db"
  unset DATABASE_URL SCHEMAHOOK_DATABASE_URL PGPASSWORD PGPORT || true
}
