#!/usr/bin/env bash
# build.sh [all|deps|k8s|etcd|pause]: everything the local real-node cluster needs, cached.
#
#   deps   Debian packages (containerd, runc, CNI plugins, iptables, ...), installed only if missing
#   k8s    kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl $K8S_VERSION
#   etcd   etcd $ETCD_VERSION
#   pause  the pod sandbox image localhost/pause:$PAUSE_VERSION (static Go program + OCI archive)
#
# Binaries are built from the Go module proxy through the scratch modules next to this script
# (k8sbuild/, etcdbuild/, pause/) and cached outside the repo, keyed by version:
#   ${SCHEMAHOOK_CACHE:-/var/cache/schemahook}/k8s-v1.33.13/bin/, etcd-v3.5.21/bin/, pause-3.10/
# A binary that is already in the cache is not rebuilt, so a warm cache makes this a no-op.
# The cold Kubernetes build takes 10 min on 2 idle cores, over 20 min on a busy machine (about
# 2.5 GB RSS, 3 GB of GOCACHE, 0.6 GB of binaries): cache the directory between CI runs.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

STEP=${1:-all}

# The version must be stamped into the binaries: an unstamped build reports
# v0.0.0-master+$Format:%H$, and Helm's kubeVersion constraints (and kubectl's version skew
# check) compare against the server's /version.
k8s_ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local kv
  for kv in "k8s.io/component-base/version" "k8s.io/client-go/pkg/version"; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=2026-01-01T00:00:00Z ' \
      "$kv" "$K8S_VERSION" "$kv" "$kv" "$minor" "$kv" "$kv"
  done
}

step_deps() {
  [ "$(id -u)" = 0 ] || { log "deps: not root, skipping apt (the cluster needs root anyway)"; return 0; }
  # package -> a file it provides; a package is installed only when that file is missing, so a
  # machine that already has the tools (or a CI image with them baked in) never touches apt.
  local -A provides=(
    [containerd]=/usr/bin/containerd
    [runc]=/usr/sbin/runc
    [containernetworking-plugins]=/usr/lib/cni/bridge
    [iptables]=/usr/sbin/iptables
    [conntrack]=/usr/sbin/conntrack
    [openssl]=/usr/bin/openssl
    [iproute2]=/usr/sbin/ip
    [curl]=/usr/bin/curl
    [bc]=/usr/bin/bc
    [util-linux]=/usr/bin/setsid
    [postgresql-15]=$PG_BINDIR/postgres
  )
  local missing=() p
  for p in "${!provides[@]}"; do [ -e "${provides[$p]}" ] || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then log "deps: all present"; return 0; fi
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them by hand"
  log "deps: installing ${missing[*]}"
  # Keep package scripts from starting system services (containerd, a "main" PostgreSQL
  # cluster): the harness runs its own instances and must not find stray ones on its ports.
  local policy=/usr/sbin/policy-rc.d added_policy=
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; added_policy=1; fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } || rc=$?
  [ -z "$added_policy" ] || rm -f $policy
  [ $rc = 0 ] || die "apt-get failed ($rc)"
  log "deps: done"
}

need_go() {
  command -v go >/dev/null || die "Go is required (>= 1.24 for the k8s build, the repo's go.mod for the hook)"
  # The scratch modules are tidy: any attempt to change them is a bug, not something to paper
  # over with -mod=mod. -buildvcs=false: they sit in the repo's git tree, whose state is irrelevant.
  export GOFLAGS="-mod=readonly -buildvcs=false"
}

step_k8s() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl) todo=() c
  for c in "${cmds[@]}"; do [ -x "$K8S_BIN/$c" ] || todo+=("$c"); done
  if [ ${#todo[@]} -eq 0 ]; then log "k8s $K8S_VERSION: cached in $K8S_BIN"; return 0; fi
  need_go
  local t pkgs=()
  t=$(date +%s)
  for c in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "k8s $K8S_VERSION: building ${todo[*]} (from cold: 10-25 min on 2 cores)"
  # One `go build` for all of them shares the compile of the common packages. Output goes to a
  # temporary directory first: an interrupted build must not leave a binary that looks cached.
  rm -rf "$K8S_BIN.tmp" && mkdir -p "$K8S_BIN.tmp" "$K8S_BIN"
  (cd "$HERE/k8sbuild" && go build -ldflags "$(k8s_ldflags)" -o "$K8S_BIN.tmp/" "${pkgs[@]}")
  for c in "${todo[@]}"; do
    if [ "$c" = kubectl ]; then set -- version --client; else set -- --version; fi
    "$K8S_BIN.tmp/$c" "$@" 2>&1 | grep -q "$K8S_VERSION\$" || die "$c is not stamped $K8S_VERSION"
  done
  for c in "${todo[@]}"; do mv "$K8S_BIN.tmp/$c" "$K8S_BIN/$c"; done
  rmdir "$K8S_BIN.tmp"
  log "k8s $K8S_VERSION: built in $(($(date +%s) - t))s"
}

step_etcd() {
  if [ -x "$ETCD_BIN/etcd" ]; then log "etcd $ETCD_VERSION: cached in $ETCD_BIN"; return 0; fi
  need_go
  local t
  t=$(date +%s)
  log "etcd $ETCD_VERSION: building"
  mkdir -p "$ETCD_BIN"
  # go.etcd.io/etcd/server/v3 cannot be `go install`ed (its go.mod has replace directives);
  # in 3.5 the module root is the etcd main package.
  (cd "$HERE/etcdbuild" && go build -o "$ETCD_BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  "$ETCD_BIN/etcd.tmp" --version | grep -q "etcd Version: ${ETCD_VERSION#v}" || die "unexpected etcd version"
  mv "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
  log "etcd $ETCD_VERSION: built in $(($(date +%s) - t))s"
}

step_pause() {
  # Keyed by the source's hash too: a change to pause/main.go rebuilds the image.
  local key; key=$(cat "$HERE/pause/go.mod" "$HERE/pause/main.go" | sha256sum | cut -c1-16)
  if [ -f "$PAUSE_DIR/pause.tar" ] && [ "$(cat "$PAUSE_DIR/source.sha" 2>/dev/null)" = "$key" ]; then
    log "pause $PAUSE_VERSION: cached in $PAUSE_DIR"; return 0
  fi
  need_go
  rm -rf "$PAUSE_DIR/rootfs" && mkdir -p "$PAUSE_DIR/rootfs"
  (cd "$HERE/pause" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$PAUSE_DIR/rootfs/pause" .)
  # 65535 is what registry.k8s.io/pause runs as; the kubelet overrides it with the pod's user.
  "$REPO/scripts/image.sh" pack "$PAUSE_DIR/rootfs" "$PAUSE_IMAGE" "$PAUSE_DIR/pause.tar" /pause 65535:65535 >&2
  echo "$key" >"$PAUSE_DIR/source.sha"
  log "pause $PAUSE_VERSION: built"
}

mkdir -p "$CACHE"
# Two concurrent runs (say, two CI jobs on one machine) must not build into the same directory.
exec 9>"$CACHE/.build.lock"
flock 9

case $STEP in
all) step_deps; step_k8s; step_etcd; step_pause ;;
deps | k8s | etcd | pause) "step_$STEP" ;;
*) die "usage: $0 [all|deps|k8s|etcd|pause]" ;;
esac
