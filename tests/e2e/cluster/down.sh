#!/usr/bin/env bash
# down.sh [--purge]: stop the local cluster started by up.sh (and postgres.sh) and remove every
# trace it left on the host: processes (by PID file, then by the state path in their command
# line), container processes, mounts, the pod bridge, KUBE-* iptables chains, kubepods cgroups,
# CNI results, /var/log/containers links, host directories that did not exist before up.sh.
#
# Safe to run at any time: when nothing is up, twice in a row, after a crash. Logs stay in
# $STATE/logs for inspection (up.sh wipes them); --purge deletes the whole state directory.
# Exits 1 if something could not be cleaned (the leak report says what).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root
PURGE=${1:-}

# PostgreSQL listens on the bridge address: stop it before the bridge goes away.
"$HERE/postgres.sh" stop || true

# 1. No new pods: stop the controllers and the scheduler first, so that deleted pods of Jobs
#    are not replaced while the node drains.
stop_pids 10 kube-controller-manager kube-scheduler

# 2. Let the kubelet tear pods down itself: it runs CNI DEL (releasing addresses and removing
#    veths), unmounts volumes and removes cgroups properly. Force deletion makes it immediate.
if pid_alive kubelet && pid_alive kube-apiserver; then
  kubectl_ delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
  if pid_alive containerd; then
    no_tasks() { [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ]; }
    waitfor "pods to stop" 45 no_tasks || log "some pods did not stop in time; killing them"
  fi
fi
stop_pid kubelet 15

# 3. Whatever is still running in containerd: kill the tasks, then containerd itself.
if pid_alive containerd; then
  for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
fi
stop_pid containerd

# 4. Shims outlive containerd by design, and container processes outlive a killed shim. The
#    former carry our socket path in their command line; the latter sit in the kubepods cgroups.
kill_cgroup_procs() {
  local cg f p n=0
  while read -r cg; do
    while read -r f; do
      while read -r p; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null && n=$((n + 1)); done <"$f"
    done < <(find "$cg" -name cgroup.procs 2>/dev/null)
  done < <(kubepods_cgroups)
  [ $n = 0 ] || log "killed $n container processes"
}
kill_cgroup_procs
for p in $(our_pids); do
  case "$(cmdline "$p")" in
  *containerd-shim*) kill -9 "$p" 2>/dev/null && log "killed leftover shim $p" ;;
  esac
done

# 5. The control plane.
stop_pids 10 kube-apiserver etcd

# Last resort for processes whose PID file is gone (a crash of up.sh, a deleted state dir):
# anything else still carrying the state path, by PID.
for p in $(our_pids); do
  log "killing leftover process $p: $(cmdline "$p" | cut -c1-100)"
  kill "$p" 2>/dev/null || true
done
sleep 0.2
for p in $(our_pids); do kill -9 "$p" 2>/dev/null || true; done
kill_cgroup_procs

# 6. Mounts under the state dir (rootfs overlays, sandbox /dev/shm, netns, volume tmpfs, the
#    kubelet's shared bind mount of its root dir), deepest first; lazily if busy.
for pass in 1 2 3; do
  mapfile -t mounts < <(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r)
  [ ${#mounts[@]} -gt 0 ] || break
  for m in "${mounts[@]}"; do
    umount "$m" 2>/dev/null || { [ $pass -ge 2 ] && umount -l "$m" 2>/dev/null; } || true
  done
done

# 7. Network: the bridge (with any veth still attached) and the iptables chains.
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$BRIDGE" && log "deleted bridge $BRIDGE"
fi
# Jumps into KUBE-* chains from the built-in chains go first (by rule number, from the end, as
# rules may carry quoted comments), then the chains are flushed, then deleted.
while read -r ipt t; do
  [ -n "$ipt" ] || continue
  for chain in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
    mapfile -t rules < <($ipt -w 5 -t "$t" -S "$chain" 2>/dev/null | grep -v '^-P ')
    for ((i = ${#rules[@]}; i >= 1; i--)); do
      case "${rules[i - 1]}" in *" -j KUBE-"*) $ipt -w 5 -t "$t" -D "$chain" "$i" 2>/dev/null || true ;; esac
    done
  done
done < <(kube_chains | awk '{print $1, $2}' | sort -u)
while read -r ipt t chain; do
  if [ -n "$ipt" ]; then $ipt -w 5 -t "$t" -F "$chain" 2>/dev/null || true; fi
done < <(kube_chains)
while read -r ipt t chain; do
  if [ -n "$ipt" ]; then $ipt -w 5 -t "$t" -X "$chain" 2>/dev/null || true; fi
done < <(kube_chains)
if [ -f "$STATE/ip_forward.orig" ]; then
  cat "$STATE/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward
  rm -f "$STATE/ip_forward.orig"
fi

# 8. cgroups the kubelet created (empty now), deepest first.
for pass in 1 2 3; do
  mapfile -t cgs < <(kubepods_cgroups)
  [ ${#cgs[@]} -gt 0 ] || break
  for cg in "${cgs[@]}"; do find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  [ $pass = 3 ] || { mapfile -t cgs < <(kubepods_cgroups); [ ${#cgs[@]} -eq 0 ] || sleep 0.5; }
done

# 9. Host paths with compiled-in locations: CNI result cache, container log links, and the
#    directories up.sh found absent (for instance /var/lib/kubelet/device-plugins, /run/containerd/s).
rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
for l in /var/log/containers/*; do
  [ -L "$l" ] && case "$(readlink "$l")" in "$STATE"/*) rm -f "$l" ;; esac
done
if [ -f "$STATE/host-created" ]; then
  while read -r p; do
    if [ -z "$p" ] || [ ! -e "$p" ]; then continue; fi
    if grep -q " ${p}[/ ]" /proc/mounts; then log "not removing $p: something is mounted below it"; continue; fi
    rm -rf "$p" && log "removed $p"
  done <"$STATE/host-created"
fi

rm -f "$STATE"/*.pid "$STATE"/*.cmd 2>/dev/null || true
if ! leak_report; then
  echo "down.sh: the host is not clean (see LEAK lines above)" >&2
  exit 1
fi
if [ "$PURGE" = --purge ]; then rm -rf "$STATE"; fi
log "down: clean"
