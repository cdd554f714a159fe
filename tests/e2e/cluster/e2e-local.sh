#!/usr/bin/env bash
# e2e-local.sh [go test args...]: the e2e suite on a local real-node cluster, from a clean clone.
#
#   build.sh (cached) -> scripts/image.sh -> up.sh -> postgres.sh start -> load-image.sh
#   -> smoke.sh -> go test ./e2e/... (in tests/) -> go test (in tests/argocd) -> down.sh (always)
#   -> leak check
#
# Extra arguments go to `go test` (e.g. -run TestUpgrade). SCHEMAHOOK_E2E_KEEP=1 leaves the
# cluster up afterwards (KUBECONFIG is printed; tear it down with down.sh).
# Exit status: the tests' status, or 1 if anything of the harness is left on the host.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
export T0
need_root

IMAGE=${SCHEMAHOOK_E2E_IMAGE:-localhost/schemahook:dev}
ARCHIVE=${SCHEMAHOOK_E2E_ARCHIVE:-$REPO/bin/schemahook-image.tar}
TIMINGS=()
phase() { # phase NAME CMD...: run and remember how long it took
  local name=$1 t rc=0; shift
  t=$(date +%s.%N)
  "$@" || rc=$?
  TIMINGS+=("$(printf '%-10s %6.1fs' "$name" "$(echo "$(date +%s.%N) - $t" | bc)")")
  return "$rc"
}

finish() {
  local rc=$?
  set +e
  if [ "${SCHEMAHOOK_E2E_KEEP:-}" = 1 ]; then
    log "SCHEMAHOOK_E2E_KEEP=1: cluster left up; KUBECONFIG=$STATE/admin.kubeconfig; $HERE/down.sh to stop"
  else
    phase down "$HERE/down.sh"
    # down.sh checks too, but a leak must fail the run even if down.sh itself was broken.
    if ! leak_report; then
      echo "e2e-local: the harness left things behind (LEAK lines above)" >&2
      [ $rc != 0 ] || rc=1
    fi
  fi
  printf 'timings:\n'; printf '  %s\n' "${TIMINGS[@]}"
  log "e2e-local: exit $rc"
  exit $rc
}
trap finish EXIT

phase build "$HERE/build.sh"
phase image env IMAGE="$IMAGE" "$REPO/scripts/image.sh" "$ARCHIVE"
# The migrations' delivery modes: a derived image with the example schema baked in, and an
# application image holding only the example schema, without a shell or any binary.
EXAMPLE_IMAGE=localhost/schemahook-example:dev
EXAMPLE_ARCHIVE=$REPO/bin/schemahook-example-image.tar
APP_IMAGE=localhost/schemahook-e2e-app:dev
APP_ARCHIVE=$REPO/bin/schemahook-e2e-app-image.tar
phase image env IMAGE="$EXAMPLE_IMAGE" MIGRATIONS="$REPO/migrations" "$REPO/scripts/image.sh" "$EXAMPLE_ARCHIVE"
app_rootfs() {
  local r; r=$(mktemp -d)
  mkdir -p "$r/app/migrations" && cp "$REPO"/migrations/*.sql "$r/app/migrations/"
  chmod -R a+rX "$r"
  "$REPO/scripts/image.sh" pack "$r" "$APP_IMAGE" "$APP_ARCHIVE" /app/server 65532:65532
  rm -rf "$r"
}
phase image app_rootfs
phase up "$HERE/up.sh"
phase postgres "$HERE/postgres.sh" start
phase load "$HERE/load-image.sh" "$ARCHIVE" "$EXAMPLE_ARCHIVE" "$APP_ARCHIVE"
phase smoke "$HERE/smoke.sh" "$IMAGE"

# The suite's settings; pg.env adds the CA file, user and database of the hook's role.
set -a
# shellcheck disable=SC1091
. "$STATE/pg.env"
set +a
export KUBECONFIG=$STATE/admin.kubeconfig
export SCHEMAHOOK_E2E_IMAGE=$IMAGE
export SCHEMAHOOK_E2E_EXAMPLE_IMAGE=$EXAMPLE_IMAGE
export SCHEMAHOOK_E2E_APP_IMAGE=$APP_IMAGE
export SCHEMAHOOK_E2E_USER_KUBECONFIG=$STATE/user.kubeconfig
export PATH=$K8S_BIN:$PATH # kubectl of the server's version, for tests that shell out

# SCHEMAHOOK_E2E_SUITES picks the Go suites that run on this cluster (both by default): e2e (Helm,
# tests/e2e) and argocd (Argo CD's sync engine, tests/argocd, a module of its own). Both get the
# same go test arguments; a -run pattern that matches nothing in a suite runs nothing there.
SUITES=" ${SCHEMAHOOK_E2E_SUITES:-e2e argocd} "
suites_rc=0
if [[ $SUITES == *" e2e "* ]]; then
  if compgen -G "$REPO/tests/e2e/*_test.go" >/dev/null; then
    # shellcheck disable=SC2016 # $1/$@ belong to the inner shell
    phase test bash -c 'cd "$1/tests" && shift && go test ./e2e/... -count=1 -v -timeout 30m "$@"' _ "$REPO" "$@" || suites_rc=$?
  else
    log "no Go e2e tests in tests/e2e yet: the smoke test is the whole suite"
  fi
fi
if [[ $SUITES == *" argocd "* ]] && compgen -G "$REPO/tests/argocd/*_test.go" >/dev/null; then
  # shellcheck disable=SC2016 # $1/$@ belong to the inner shell
  phase argocd bash -c 'cd "$1/tests/argocd" && shift && go test . -count=1 -v -timeout 20m "$@"' _ "$REPO" "$@" || suites_rc=$?
fi
exit "$suites_rc"
