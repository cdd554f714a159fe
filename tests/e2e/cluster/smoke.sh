#!/usr/bin/env bash
# smoke.sh [IMAGE]: prove that the local cluster runs what the e2e tests need, in seconds.
#
#   1. PodSecurity "restricted" is enforced in a namespace labelled for it (a privileged pod is
#      rejected by the server);
#   2. a restricted-compliant Job runs to Complete on the real node: IMAGE with argument
#      "version" (the hook image, already loaded), or else the probe's "hello";
#   3. a pod reaches the host's PostgreSQL at 198.18.0.1:5439 and logs in as "app" with its
#      password (SCRAM) over TLS verified against the server's CA (postgres.sh start first).
# The probe image (probe/, a static pgx client) is built and loaded here.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root
HOOK_IMAGE=${1:-}
NS=schemahook-smoke
PROBE_IMAGE=localhost/schemahook-e2e-probe:1
[ -f "$STATE/pg.env" ] || die "PostgreSQL is not running: $HERE/postgres.sh start"

# The probe image, built fresh (a few seconds) into the state dir.
W=$STATE/smoke
rm -rf "$W" && mkdir -p "$W/rootfs/etc" "$W/rootfs/tmp"
(cd "$HERE/probe" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags '-s -w' -o "$W/rootfs/probe" .)
printf 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$W/rootfs/etc/passwd"
"$REPO/scripts/image.sh" pack "$W/rootfs" "$PROBE_IMAGE" "$W/probe.tar" /probe 65532:65532 >/dev/null
"$HERE/load-image.sh" "$W/probe.tar"

kubectl_ delete namespace "$NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
kubectl_ create namespace "$NS" >/dev/null
kubectl_ label namespace "$NS" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null

# 1. The server must refuse a privileged pod in this namespace.
if out=$(kubectl_ -n "$NS" run privileged --image="$PROBE_IMAGE" --restart=Never --dry-run=server \
  --overrides='{"spec":{"containers":[{"name":"privileged","image":"'"$PROBE_IMAGE"'","securityContext":{"privileged":true}}]}}' 2>&1); then
  die "a privileged pod was admitted into a restricted namespace: $out"
fi
grep -q 'violates PodSecurity "restricted' <<<"$out" || die "unexpected rejection: $out"
log "PodSecurity restricted is enforced"

# job NAME IMAGE ARGS_JSON [ENV_JSON] [VOLUMES]: a Job that satisfies "restricted" the way the
# chart's hook Job does (non-root numeric user, read-only root, no capabilities, RuntimeDefault).
job() {
  local name=$1 image=$2 args=$3 env=${4:-[]}
  kubectl_ -n "$NS" apply -f - >/dev/null <<JOB
{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "$name"},
 "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 120, "template": {"spec": {
   "restartPolicy": "Never", "automountServiceAccountToken": false,
   "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
   "volumes": [{"name": "pg-ca", "configMap": {"name": "pg-ca"}}],
   "containers": [{"name": "main", "image": "$image", "imagePullPolicy": "Never", "args": $args, "env": $env,
     "volumeMounts": [{"name": "pg-ca", "mountPath": "/etc/pg-ca", "readOnly": true}],
     "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}}]}}}}
JOB
}
# wait_job NAME: Complete, or print why not and fail.
wait_job() {
  if ! kubectl_ -n "$NS" wait --for=condition=complete "job/$1" --timeout=120s >/dev/null 2>&1; then
    kubectl_ -n "$NS" describe job "$1" >&2 || true
    kubectl_ -n "$NS" describe pods -l "job-name=$1" >&2 || true
    kubectl_ -n "$NS" logs -l "job-name=$1" --tail=50 >&2 || true
    die "job $1 did not complete"
  fi
  log "job $1 Complete: $(kubectl_ -n "$NS" logs "job/$1" | tail -n 1)"
}

kubectl_ -n "$NS" create configmap pg-ca --from-file=ca.crt="$STATE/pg-ca.crt" >/dev/null
kubectl_ -n "$NS" create secret generic pg --from-file=password="$STATE/pg-password" >/dev/null

# 2. A Job on the real node.
if [ -n "$HOOK_IMAGE" ]; then job hook "$HOOK_IMAGE" '["version"]'; wait_job hook
else job hello "$PROBE_IMAGE" '["hello"]'; wait_job hello; fi

# 3. PostgreSQL from a pod, password from a Secret, TLS verified.
job postgres "$PROBE_IMAGE" '["postgres"]' '[
  {"name": "PGHOST", "value": "'"$GATEWAY_IP"'"}, {"name": "PGPORT", "value": "'"$PG_PORT"'"},
  {"name": "PGUSER", "value": "app"}, {"name": "PGDATABASE", "value": "app"},
  {"name": "PGSSLMODE", "value": "verify-full"}, {"name": "PGSSLROOTCERT", "value": "/etc/pg-ca/ca.crt"},
  {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "password"}}}]'
wait_job postgres
kubectl_ -n "$NS" logs job/postgres | grep -q "as app from 198.18.0." || die "the pod did not connect from the pod network"

kubectl_ delete namespace "$NS" --wait=true --timeout=60s >/dev/null
log "smoke test passed"
