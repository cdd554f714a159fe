#!/usr/bin/env bash
# postgres.sh start|stop|status: a throwaway PostgreSQL 15 for the e2e tests, on the pod bridge.
#
# Pods reach it at 198.18.0.1:5439 (the host side of bridge shk0), the tests at 127.0.0.1:5439.
# Authentication is what production uses: passwords only, SCRAM-SHA-256 only (pg_hba has no
# trust/md5 line for TCP), optionally over TLS. Every start initializes a new cluster.
#
# After `start`:
#   $STATE/pg-password        password of role "app" (LOGIN, owns database "app")
#   $STATE/pg-admin-password  password of the superuser "postgres"
#   $STATE/pg-ca.crt          CA of the server certificate (sslmode=verify-full works for both IPs)
#   $STATE/pg.env             SCHEMAHOOK_E2E_PG_* variables for the Go e2e tests (source it)
# The data directory is $STATE/postgres/data; the server log is $STATE/logs/postgres.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root

PGDIR=$STATE/postgres
PGDATA=$PGDIR/data
PGRUN=$PGDIR/run # unix socket directory
PGUSER_OS=postgres # PostgreSQL refuses to run as root

as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
running() { [ -f "$PGDATA/postmaster.pid" ] && as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

stop() {
  if [ -d "$PGDATA" ] && running; then
    as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null
    log "postgres stopped"
  fi
  # A postmaster whose data directory vanished can only be found by its PID.
  stop_pid postgres
}

start() {
  [ -x "$PG_BINDIR/postgres" ] || die "$PG_BINDIR/postgres not found: run $HERE/build.sh deps"
  id "$PGUSER_OS" >/dev/null 2>&1 || die "no OS user $PGUSER_OS (it comes with the postgresql packages)"
  if [ -d "$PGDATA" ] && running; then
    # pg.env is written last: without it, an earlier start failed half-way. Start over.
    if [ -f "$STATE/pg.env" ]; then log "postgres already running on $GATEWAY_IP:$PG_PORT"; return 0; fi
    stop
  fi
  rm -f "$STATE/pg.env"
  if ss -Hltn "sport = :$PG_PORT" | grep -q .; then die "port $PG_PORT is in use: $(ss -Hltnp "sport = :$PG_PORT")"; fi

  mkdir -p "$STATE" "$LOGS"
  chmod 0755 "$STATE"
  # The server binds the bridge address: the bridge must exist first (up.sh creates it too).
  ensure_bridge

  rm -rf "$PGDIR"
  mkdir -p "$PGDATA" "$PGRUN"
  # No trailing newline: the files are used as-is (a Secret created --from-file, PGPASSWORD).
  openssl rand -hex 24 | tr -d '\n' >"$STATE/pg-password"
  openssl rand -hex 24 | tr -d '\n' >"$STATE/pg-admin-password"
  chmod 0600 "$STATE/pg-password" "$STATE/pg-admin-password"
  install -o "$PGUSER_OS" -m 0600 "$STATE/pg-admin-password" "$PGDIR/pwfile"
  : >"$LOGS/postgres.log"
  chown -R "$PGUSER_OS:" "$PGDIR" "$LOGS/postgres.log"
  chmod 0700 "$PGDATA"

  as_pg "$PG_BINDIR/initdb" -D "$PGDATA" -U postgres --pwfile="$PGDIR/pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C >"$PGDIR/initdb.log" 2>&1 ||
    { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
  rm -f "$PGDIR/pwfile"

  # TLS with a CA of its own, so tests can use sslmode=verify-full like a careful production
  # setup; sslmode=disable keeps working (pg_hba uses "host", not "hostssl").
  local k=$PGDIR/tls
  mkdir -p "$k"
  openssl ecparam -name prime256v1 -genkey -noout -out "$k/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$k/ca.key" -subj "/CN=schemahook-e2e-postgres-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" -out "$k/ca.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$k/server.key" 2>/dev/null
  openssl req -new -key "$k/server.key" -subj "/CN=$GATEWAY_IP" -out "$k/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$GATEWAY_IP" >"$k/server.ext"
  openssl x509 -req -in "$k/server.csr" -CA "$k/ca.crt" -CAkey "$k/ca.key" -CAcreateserial -days 30 -sha256 \
    -extfile "$k/server.ext" -out "$k/server.crt" 2>/dev/null
  cp "$k/ca.crt" "$STATE/pg-ca.crt"
  rm -f "$k/ca.key" "$k/server.csr" "$k/server.ext"
  chown -R "$PGUSER_OS:" "$k"
  chmod 0600 "$k/server.key"

  cat >>"$PGDATA/postgresql.conf" <<EOF

# --- tests/e2e/cluster/postgres.sh ---
listen_addresses = '$GATEWAY_IP,127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGRUN'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$k/server.crt'
ssl_key_file = '$k/server.key'
max_connections = 200
# Throwaway data: durability only costs time.
fsync = off
synchronous_commit = off
full_page_writes = off
# The hooks' connections (and failed logins) in the log help to debug an e2e failure.
log_connections = on
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  # Replace initdb's pg_hba: only SCRAM passwords over TCP, only from loopback and the pod
  # subnet; the OS user postgres may use the socket (this script's own setup connection).
  cat >"$PGDATA/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER      ADDRESS          METHOD
local   all       postgres                   peer
host    all       all       127.0.0.1/32     scram-sha-256
host    all       all       $POD_SUBNET   scram-sha-256
EOF
  chown "$PGUSER_OS:" "$PGDATA/pg_hba.conf"

  as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$LOGS/postgres.log" -w -t 60 start >/dev/null ||
    { tail -n 20 "$LOGS/postgres.log" >&2; die "postgres did not start"; }
  head -n1 "$PGDATA/postmaster.pid" >"$STATE/postgres.pid"
  echo postgres >"$STATE/postgres.cmd"

  as_pg "$PG_BINDIR/psql" -h "$PGRUN" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -v pw="$(cat "$STATE/pg-password")" <<'EOF'
CREATE ROLE app LOGIN PASSWORD :'pw';
CREATE DATABASE app OWNER app;
EOF

  # The same path a hook takes: TCP to the bridge address, SCRAM, and a stored SCRAM secret.
  local check
  check=$(PGPASSWORD=$(cat "$STATE/pg-password") PGSSLMODE=verify-full PGSSLROOTCERT=$STATE/pg-ca.crt \
    "$PG_BINDIR/psql" -h "$GATEWAY_IP" -p "$PG_PORT" -U app -d app -At \
    -c "SELECT current_user || ' ' || (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
  [ "$check" = "app true" ] || die "login as app over $GATEWAY_IP failed: $check"
  local secret
  secret=$(PGPASSWORD=$(cat "$STATE/pg-admin-password") "$PG_BINDIR/psql" -h 127.0.0.1 -p "$PG_PORT" \
    -U postgres -d postgres -At -c "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'app'")
  [ "$secret" = 'SCRAM-SHA-256$' ] || die "password of app is not stored as SCRAM: $secret"

  cat >"$STATE/pg.env" <<EOF
SCHEMAHOOK_E2E_PG_HOST=$GATEWAY_IP
SCHEMAHOOK_E2E_PG_PORT=$PG_PORT
SCHEMAHOOK_E2E_PG_USER=app
SCHEMAHOOK_E2E_PG_DATABASE=app
SCHEMAHOOK_E2E_PG_PASSWORD_FILE=$STATE/pg-password
SCHEMAHOOK_E2E_PG_CA_FILE=$STATE/pg-ca.crt
SCHEMAHOOK_E2E_PG_ADMIN_URL=postgres://postgres:$(cat "$STATE/pg-admin-password")@127.0.0.1:$PG_PORT/postgres?sslmode=disable
EOF
  chmod 0600 "$STATE/pg.env"
  log "postgres ready on $GATEWAY_IP:$PG_PORT and 127.0.0.1:$PG_PORT (role app, database app; $STATE/pg.env)"
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) if [ -d "$PGDATA" ] && running; then echo running; else echo stopped; exit 1; fi ;;
*) die "usage: $0 start|stop|status" ;;
esac
