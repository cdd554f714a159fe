# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are used by the scripts that source this file
# lib.sh: settings and helpers that every script of the local real-node cluster harness sources.
#
# The harness runs a single-node Kubernetes as plain processes: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd and a kubelet with a real node. There is no
# Docker and no registry, so images are imported as OCI archives. Everything is keyed by version
# so that a cache directory can be kept between CI runs.

# Versions. k8s v1.33.13 is pinned because the Go module proxy used here serves every
# staging module of it (v1.31.14 and v1.32.13 lack some); see k8sbuild/go.mod.
K8S_VERSION=v1.33.13
ETCD_VERSION=v3.5.21
PAUSE_VERSION=3.10

# Cached build outputs live OUTSIDE the repo, keyed by version, so a clean clone with a warm
# cache skips the 10-15 minute Kubernetes build.
CACHE=${SCHEMAHOOK_CACHE:-/var/cache/schemahook}
K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
PAUSE_DIR=$CACHE/pause-$PAUSE_VERSION
PAUSE_IMAGE=localhost/pause:$PAUSE_VERSION

# Runtime state of one cluster (PKI, data, logs, sockets, PID files). Wiped by every up.sh.
STATE=${SCHEMAHOOK_E2E_DIR:-/var/tmp/schemahook-e2e}
LOGS=$STATE/logs
PKI=$STATE/pki

# Node and network. The pod subnet is in 198.18.0.0/15 (RFC 2544 benchmarking range), never in
# the private ranges, so test traffic cannot be confused with a real network of the machine. The
# host side of the bridge (198.18.0.1) is where pods find the PostgreSQL server and the kubelet.
NODE_NAME=schemahook-node
BRIDGE=shk0
POD_SUBNET=198.18.0.0/24
GATEWAY_IP=198.18.0.1
SERVICE_SUBNET=198.18.1.0/24
SERVICE_IP=198.18.1.1 # first address of SERVICE_SUBNET: the "kubernetes" Service
CNI_NETWORK=schemahook

# PostgreSQL for the hook (see postgres.sh).
PG_PORT=5439
PG_BINDIR=/usr/lib/postgresql/15/bin

# Shared helpers ---------------------------------------------------------------------------

T0=${T0:-$(date +%s.%N)}
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $T0" | bc)"; }
log() { echo "[$(elapsed)s] $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "$(basename "$0") must run as root (it starts containerd and a kubelet)"; }

# waitfor [--proc NAME] DESCRIPTION SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
# With --proc, give up as soon as the recorded process NAME has exited (a component that
# cannot bind its port dies at once; there is no point in waiting out the timeout).
waitfor() {
  local proc=
  if [ "$1" = --proc ]; then proc=$2; shift 2; fi
  local what=$1 secs=$2; shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$proc" ] && ! pid_alive "$proc"; then
      echo "$proc exited while waiting for: $what (see $LOGS/$proc.log)" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "timeout after ${secs}s waiting for: $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

# pid_alive NAME: the process recorded in $STATE/NAME.pid is running and is still the program
# we started (guards against PID reuse after a reboot or a long pause).
pid_alive() {
  local f=$STATE/$1.pid p
  [ -f "$f" ] || return 1
  p=$(cat "$f")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  grep -q -- "$(cat "$STATE/$1.cmd" 2>/dev/null || echo "$1")" "/proc/$p/cmdline" 2>/dev/null
}

# start_bg NAME LOGFILE CMD...: start CMD detached (its own session, so our caller's terminal
# signals do not reach it) and record its PID.
start_bg() {
  local name=$1 logf=$2; shift 2
  mkdir -p "$LOGS"
  setsid "$@" >"$logf" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  basename "$1" >"$STATE/$name.cmd"
}

# running PID: the process exists and is not a zombie waiting to be reaped.
running_pid() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

# stop_pids SECS NAME...: SIGTERM the recorded processes together, SIGKILL what is left after
# SECS seconds. Together, because each one takes a second or two to shut down cleanly.
stop_pids() {
  local secs=$1 n p i pids=() names=()
  shift
  for n in "$@"; do
    if pid_alive "$n"; then
      p=$(cat "$STATE/$n.pid")
      kill "$p" 2>/dev/null || true
      pids+=("$p") names+=("$n")
    fi
    rm -f "$STATE/$n.pid" "$STATE/$n.cmd"
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for ((i = 0; i < secs * 10; i++)); do
    local alive=0
    for p in "${pids[@]}"; do running_pid "$p" && alive=1; done
    [ $alive = 1 ] || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do running_pid "$p" && kill -9 "$p" 2>/dev/null; done
  log "stopped ${names[*]}"
}
stop_pid() { stop_pids "${2:-10}" "$1"; }

# ensure_bridge: create the pod bridge with the gateway address before anything needs to bind it
# (PostgreSQL and the kubelet listen on $GATEWAY_IP). The CNI bridge plugin adopts the existing
# bridge and finds the gateway address already in place.
ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  if ! ip -4 addr show dev "$BRIDGE" | grep -q "inet $GATEWAY_IP/"; then
    ip addr add "$GATEWAY_IP/${POD_SUBNET#*/}" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" --request-timeout=10s "$@"; }
ctr_() { ctr --address "$STATE/containerd/containerd.sock" --namespace k8s.io "$@"; }

# our_pids: every process that belongs to this harness: one of its programs (etcd, the control
# plane, containerd and its shims, the kubelet, PostgreSQL) with the state directory in its
# command line.
# Container processes are not listed: they are in the kubepods cgroups, see leak_report.
our_pids() {
  local f p
  # one grep over all command lines; a fork per process would take seconds on a busy machine
  while read -r f; do
    p=${f#/proc/}; p=${p%/cmdline}
    if [ "$p" = $$ ] || [ "$p" = "$BASHPID" ]; then continue; fi
    # only the programs the harness starts: a kubectl, an editor or a `tail -f` of a log
    # that mentions the path belongs to someone else
    local exe
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    case "${exe% (deleted)}" in # a binary rebuilt while running shows as "(deleted)"
    */etcd | */kube-apiserver | */kube-controller-manager | */kube-scheduler | */kubelet | \
      */containerd | */containerd-shim* | */postgres) echo "$p" ;;
    esac
  done < <(grep -laF -- "$STATE/" /proc/[0-9]*/cmdline 2>/dev/null || true)
}

cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# kubepods_cgroups: cgroup directories the kubelet created (cgroup v1 hierarchies and v2).
kubepods_cgroups() { find /sys/fs/cgroup -maxdepth 2 -type d -name kubepods 2>/dev/null || true; }

# kube_chains: "TOOL TABLE CHAIN" for every KUBE-* chain in iptables/ip6tables.
kube_chains() {
  local ipt t
  for ipt in iptables ip6tables; do
    command -v $ipt >/dev/null || continue
    for t in filter nat mangle; do
      $ipt -w 5 -t $t -S 2>/dev/null | awk -v i=$ipt -v t=$t '$1 == "-N" && $2 ~ /^KUBE-/ {print i, t, $2}'
    done
  done
}

# leak_report: print every trace of the harness still on the host; returns 1 if there is any.
leak_report() {
  local leaks=() p
  for p in $(our_pids); do leaks+=("process $p: $(cmdline "$p" | cut -c1-120)"); done
  while read -r p; do [ -n "$p" ] && leaks+=("mount $p"); done < <(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts)
  ip link show "$BRIDGE" >/dev/null 2>&1 && leaks+=("bridge $BRIDGE")
  while read -r p; do [ -n "$p" ] && leaks+=("iptables chain $p"); done < <(kube_chains)
  while read -r p; do [ -n "$p" ] && leaks+=("cgroup $p"); done < <(kubepods_cgroups)
  for p in /var/lib/cni/results/"$CNI_NETWORK"-*; do [ -e "$p" ] && leaks+=("CNI result $p"); done
  for p in /var/log/containers/*; do
    [ -L "$p" ] && case "$(readlink "$p")" in "$STATE"/*) leaks+=("log link $p") ;; esac
  done
  if [ -f "$STATE/host-created" ]; then
    while read -r p; do [ -e "$p" ] && leaks+=("host path $p (created by the harness)"); done <"$STATE/host-created"
  fi
  [ ${#leaks[@]} -eq 0 ] && return 0
  printf 'LEAK: %s\n' "${leaks[@]}"
  return 1
}
