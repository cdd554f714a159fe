#!/usr/bin/env bash
# up.sh: start a fresh single-node Kubernetes with a real kubelet, as plain processes.
#
#   etcd, kube-apiserver (PodSecurity admission on), kube-controller-manager, kube-scheduler,
#   containerd (its own config/root/state/socket) and a kubelet registering node
#   "schemahook-node"; pods get addresses in 198.18.0.0/24 on bridge shk0 (host side 198.18.0.1).
#
# Binaries come from build.sh's cache (run it first). All state is under
# ${SCHEMAHOOK_E2E_DIR:-/var/tmp/schemahook-e2e} and wiped on every start; a cluster that is
# still up (or was left half-down) is torn down first with down.sh.
# Writes $STATE/admin.kubeconfig (cluster-admin) and $STATE/user.kubeconfig (an authenticated
# user with no permissions, for RBAC tests). Returns when the node is Ready and the "default"
# ServiceAccount exists.
#
# Listeners: everything on 127.0.0.1 except the kubelet (198.18.0.1:10250, authenticated), which
# the apiserver must reach by the node's InternalIP for `kubectl logs/exec`, and the apiserver
# (198.18.0.1:6443), which pods reach through the "kubernetes" Service (a DNAT rule stands in for
# kube-proxy, see below).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root

for b in "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl} "$ETCD_BIN/etcd" "$PAUSE_DIR/pause.tar"; do
  [ -e "$b" ] || die "$b is missing: run $HERE/build.sh first"
done
for c in containerd runc ctr openssl iptables ip ss curl setsid; do
  command -v $c >/dev/null || die "$c not found: run $HERE/build.sh deps"
done

# Leftovers of an earlier run (processes, mounts, the bridge) would collide with the new one.
if [ -d "$STATE" ] || ip link show "$BRIDGE" >/dev/null 2>&1; then
  log "cleaning up an earlier cluster"
  "$HERE/down.sh"
fi
# Never rm -rf across a mount point: a leftover bind mount would take host files with it.
if grep -q " ${STATE}[/ ]" /proc/mounts; then die "mounts remain under $STATE after down.sh"; fi
rm -rf "$STATE"
mkdir -p "$STATE" "$LOGS" "$PKI"

# A failed start must not leave half a cluster behind: show why and tear it down (unless
# SCHEMAHOOK_E2E_KEEP=1, to look at it).
UP_OK=
on_exit() {
  [ -z "$UP_OK" ] || return 0
  echo "up.sh failed; last lines of the logs:" >&2
  tail -n 15 "$LOGS"/*.log >&2 2>/dev/null || true
  if [ "${SCHEMAHOOK_E2E_KEEP:-}" = 1 ]; then echo "SCHEMAHOOK_E2E_KEEP=1: leaving it up" >&2; else "$HERE/down.sh" >&2 || true; fi
}
trap on_exit EXIT
chmod 0755 "$STATE" # the postgres user must traverse it (postgres.sh)

# The ports must be free: a stray process on one of them would answer in place of ours.
for port in 2379 2380 6443 10248 10250 10257 10259; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use: $(ss -Hltnp "sport = :$port")"; fi
done

# Host paths that the kubelet, containerd and the CNI plugins create outside $STATE (their
# locations are compiled in). down.sh removes them only if they did not exist before.
: >"$STATE/host-created"
for p in /var/lib/kubelet /var/log/containers /var/lib/cni /run/containerd /usr/libexec/kubernetes; do
  [ -e "$p" ] || echo "$p" >>"$STATE/host-created"
done
# The CNI bridge plugin turns on IP forwarding for a gateway bridge; restored by down.sh.
cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward.orig"

# PKI -----------------------------------------------------------------------------------------
# ECDSA P-256 everywhere: a fraction of the time of RSA, and every component accepts it
# (service account tokens are then signed with ES256).
gen_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null; }
# sign NAME SUBJECT EXTENSIONS
sign() {
  gen_key "$1"
  openssl req -new -key "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$PKI/$1.ext"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt" 2>/dev/null
  rm -f "$PKI/$1.csr" "$PKI/$1.ext"
}
client() { sign "$1" "$2" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"; }

gen_key ca
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=schemahook-e2e-ca" -days 30 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$PKI/ca.crt" 2>/dev/null
sign apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$GATEWAY_IP,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
client admin "/O=system:masters/CN=schemahook-e2e-admin"
client apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
client controller-manager "/CN=system:kube-controller-manager"
client scheduler "/CN=system:kube-scheduler"
client node "/O=system:nodes/CN=system:node:$NODE_NAME"
client user "/CN=schemahook-e2e-user"
gen_key sa
openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 0600 "$PKI"/*.key

# kubeconfig NAME: $STATE/NAME.kubeconfig with the client cert NAME embedded.
kubeconfig() {
  cat >"$STATE/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: schemahook-e2e
  cluster:
    server: https://$GATEWAY_IP:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$1.crt")
    client-key-data: $(base64 -w0 "$PKI/$1.key")
contexts:
- name: schemahook-e2e
  context: {cluster: schemahook-e2e, user: $1, namespace: default}
current-context: schemahook-e2e
EOF
  chmod 0600 "$STATE/$1.kubeconfig"
}
for k in admin controller-manager scheduler node user; do kubeconfig $k; done
log "PKI and kubeconfigs written"

# Pod network: the bridge exists before anything binds $GATEWAY_IP (PostgreSQL, the kubelet).
ensure_bridge

# etcd ----------------------------------------------------------------------------------------
# --unsafe-no-fsync: the data is thrown away after the run; fsync only slows the tests down.
start_bg etcd "$LOGS/etcd.log" "$ETCD_BIN/etcd" --name schemahook-e2e --data-dir "$STATE/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster schemahook-e2e=http://127.0.0.1:2380 --unsafe-no-fsync
waitfor --proc etcd "etcd /health" 30 curl -sf http://127.0.0.1:2379/health
log "etcd ready"

# kube-apiserver ------------------------------------------------------------------------------
# PodSecurity defaults as on a hardened cluster: enforce baseline everywhere, warn on restricted;
# namespaces opt into enforce=restricted with the usual label.
cat >"$STATE/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: baseline, enforce-version: latest, warn: restricted, warn-version: latest}
    exemptions: {namespaces: [kube-system]}
EOF
# --advertise-address is the bridge address (the "kubernetes" Endpoints must not be loopback), and
# the server binds only that address: reachable from the host and from pods, not from outside.
# --kubelet-preferred-address-types=InternalIP: the node name does not resolve, its InternalIP
# ($GATEWAY_IP) is where the kubelet listens.
start_bg kube-apiserver "$LOGS/kube-apiserver.log" "$K8S_BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address="$GATEWAY_IP" --secure-port=6443 --advertise-address="$GATEWAY_IP" \
  --cert-dir="$STATE/apiserver-certs" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --api-audiences=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range="$SERVICE_SUBNET" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,NodeRestriction,PodSecurity,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy \
  --admission-control-config-file="$STATE/admission.yaml" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --allow-privileged=true --profiling=false
ADMIN_CURL=(curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
waitfor --proc kube-apiserver "kube-apiserver /readyz" 90 "${ADMIN_CURL[@]}" "https://$GATEWAY_IP:6443/readyz"
log "kube-apiserver ready"

# In-cluster API access without kube-proxy: pods get KUBERNETES_SERVICE_HOST=$SERVICE_IP:443 (the
# "kubernetes" Service); one DNAT rule sends what they send there to the apiserver. The chain's
# KUBE- prefix puts it under down.sh's cleanup of KUBE-* chains and the leak report.
iptables -w 5 -t nat -N KUBE-SHK-APISERVER 2>/dev/null || iptables -w 5 -t nat -F KUBE-SHK-APISERVER
iptables -w 5 -t nat -A KUBE-SHK-APISERVER -d "$SERVICE_IP/32" -p tcp --dport 443 -j DNAT --to-destination "$GATEWAY_IP:6443"
iptables -w 5 -t nat -C PREROUTING -i "$BRIDGE" -j KUBE-SHK-APISERVER 2>/dev/null ||
  iptables -w 5 -t nat -A PREROUTING -i "$BRIDGE" -j KUBE-SHK-APISERVER

# kube-controller-manager + kube-scheduler ----------------------------------------------------
# Without the controller-manager no pod can be created at all (the ServiceAccount admission
# needs the "default" ServiceAccount), and Jobs never get pods. nodeipam & co are off: there is
# no cloud and the CNI config assigns the pod range itself.
start_bg kube-controller-manager "$LOGS/kube-controller-manager.log" "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10257 --cert-dir="$STATE/kcm-certs" \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --use-service-account-credentials=true --leader-elect=false \
  --flex-volume-plugin-dir="$STATE/kcm-flexvolume" \
  --controllers='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller'
start_bg kube-scheduler "$LOGS/kube-scheduler.log" "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --cert-dir="$STATE/scheduler-certs" \
  --leader-elect=false

# containerd ----------------------------------------------------------------------------------
mkdir -p "$STATE/containerd" "$STATE/cni/net.d"
cat >"$STATE/containerd/config.toml" <<EOF
# Generated by tests/e2e/cluster/up.sh. Every path is under the harness state directory so that
# this containerd never touches (or conflicts with) a system one in /var/lib and /run/containerd.
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
temp = "$STATE/containerd/tmp"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$STATE/containerd/containerd.sock"
[ttrpc]
  address = "$STATE/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # There is no registry: the sandbox image is imported from our own archive (build.sh pause).
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Machines like the CI VM lack CAP_SYS_RESOURCE: runc then fails to give the sandbox its
  # oom_score_adj of -998 ("can't get final child's PID from pipe: EOF"). Clamp it instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's own state, by default in /run/containerd/runc
        Root = "$STATE/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
EOF
cat >"$STATE/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$GATEWAY_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
start_bg containerd "$LOGS/containerd.log" containerd --config "$STATE/containerd/config.toml"
waitfor --proc containerd "containerd" 30 ctr_ version
ctr_ images import "$PAUSE_DIR/pause.tar" >/dev/null
log "containerd ready, $PAUSE_IMAGE imported"

# kubelet -------------------------------------------------------------------------------------
cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Reachable by the apiserver (logs, exec) on the node's InternalIP; anonymous access is off
# and every request is authorized by the apiserver (webhook).
address: $GATEWAY_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$STATE/containerd/containerd.sock
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
podLogsDir: $STATE/pod-logs
volumePluginDir: $STATE/kubelet-plugins
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# Tests create and delete many pods quickly; never garbage-collect the imported images (they
# cannot be pulled back) and do not evict on a nearly full CI disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}
serializeImagePulls: false
# No kube-proxy here: the kubelet's own iptables chains would only be more host state to clean.
makeIPTablesUtilChains: false
EOF
mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
start_bg kubelet "$LOGS/kubelet.log" "$K8S_BIN/kubelet" \
  --config="$STATE/kubelet-config.yaml" --kubeconfig="$STATE/node.kubeconfig" \
  --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$GATEWAY_IP" --v=1

node_ready() {
  kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
waitfor --proc kubelet "node $NODE_NAME Ready" 120 node_ready
log "node $NODE_NAME Ready"
waitfor --proc kube-controller-manager "ServiceAccount default/default" 60 kubectl_ get serviceaccount default -n default
log "ServiceAccount default/default exists"

for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet; do
  pid_alive $n || die "$n exited: see $LOGS/$n.log"
done
UP_OK=1
log "cluster up in $(elapsed)s: export KUBECONFIG=$STATE/admin.kubeconfig PATH=$K8S_BIN:\$PATH"
