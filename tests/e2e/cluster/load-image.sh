#!/usr/bin/env bash
# load-image.sh ARCHIVE...: import OCI image archives (scripts/image.sh output) into the local
# cluster's containerd, namespace k8s.io (the one the kubelet's CRI uses). The image keeps the
# name in the archive (io.containerd.image.name); pods must use imagePullPolicy IfNotPresent or
# Never, since there is no registry to pull from.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
need_root
[ $# -gt 0 ] || die "usage: $0 ARCHIVE..."
pid_alive containerd || die "the cluster's containerd is not running: run $HERE/up.sh first"

for archive in "$@"; do
  [ -f "$archive" ] || die "$archive: no such file"
  ref=$(tar -xOf "$archive" index.json | grep -o '"io.containerd.image.name":"[^"]*"' | cut -d'"' -f4 || true)
  [ -n "$ref" ] || die "$archive: index.json names no image (io.containerd.image.name)"
  # Importing again under the same name replaces the old image; the unpack into the overlayfs
  # snapshotter happens here, not at pod start.
  ctr_ images import "$archive" >/dev/null
  ctr_ images ls -q "name==$ref" | grep -qx "$ref" || die "$ref is not in containerd after the import"
  log "loaded $ref ($(ctr_ images ls "name==$ref" | awk 'NR == 2 {print $3}'))"
done
