#!/usr/bin/env bash
# image.sh: build the schemahook hook image as an OCI archive, without Docker or a registry.
#
#   scripts/image.sh [OUT]            build ./hook/cmd/schemahook and write the image archive
#                                     (default bin/schemahook-image.tar, name $IMAGE)
#   scripts/image.sh pack ROOTFS REF OUT ENTRYPOINT [USER [ENV...]]
#                                     write any rootfs directory as a one-layer image archive
#                                     (the e2e harness uses it for its pause image and for an
#                                     application image without a shell)
#
# The image carries no migrations. With MIGRATIONS=DIR it is a derived image, as the Dockerfile's
# `example` target: DIR's *.sql files in /migrations and SCHEMAHOOK_MIGRATIONS=/migrations.
#
# The archive is an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/...). The
# index carries the reference as `io.containerd.image.name`, so
# `ctr -n k8s.io images import ARCHIVE` registers it under that name, ready for a kubelet with
# imagePullPolicy IfNotPresent. The image mirrors the Dockerfile (distroless/static:nonroot):
# one static binary, /etc/passwd and /etc/group with the nonroot user 65532, and /tmp.
#
# Output is reproducible: same sources and Go toolchain give the same bytes (sorted tar entries,
# fixed mtimes, numeric owners, gzip without name/timestamp, no "created" time in the config),
# so the image digest changes only when the binary does.
#
# Environment: IMAGE (default localhost/schemahook:dev), VERSION (default `git describe`),
# GOARCH (default the Go toolchain's), SOURCE_DATE_EPOCH (default 0: mtime of every file).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EPOCH=${SOURCE_DATE_EPOCH:-0}

# det_tar DIR OUT [PATHS...]: a tar whose bytes depend only on the tree's content and modes.
det_tar() {
  local dir=$1 out=$2; shift 2
  [ $# -gt 0 ] || set -- .
  tar -C "$dir" --sort=name --format=gnu --mtime="@$EPOCH" \
    --owner=0 --group=0 --numeric-owner --no-acls --no-xattrs --no-selinux \
    -cf "$out" "$@"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# put_blob FILE DIR: move FILE into the layout's blob store; prints "digest size".
put_blob() {
  local d s
  d=$(sha "$1"); s=$(stat -c %s "$1")
  mv "$1" "$2/blobs/sha256/$d"
  echo "$d $s"
}

# json_str S: S as a JSON string (only what can appear in refs, paths and labels here).
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# pack ROOTFS REF OUT ENTRYPOINT USER LABELS_JSON [ENV...]
pack() {
  local rootfs=$1 ref=$2 out=$3 entrypoint=$4 user=$5 labels=$6
  shift 6
  local env='"PATH=/"' kv
  for kv in "$@"; do env+=",$(json_str "$kv")"; done
  local arch=${GOARCH:-$(go env GOARCH 2>/dev/null || echo amd64)}
  local w=$W/pack
  rm -rf "$w" && mkdir -p "$w/layout/blobs/sha256"

  # Layer: the rootfs as a gzip'd tar. The diff_id in the config is the digest of the
  # uncompressed tar, the manifest references the compressed blob.
  # The top-level entries, not ".": a "./" entry would carry the mode of the (often 0700
  # mktemp) directory into the image's "/", and a non-root user could not reach anything.
  local top; mapfile -t top < <(cd "$rootfs" && LC_ALL=C ls -A)
  [ ${#top[@]} -gt 0 ] || { echo "empty rootfs $rootfs" >&2; return 1; }
  det_tar "$rootfs" "$w/layer.tar" "${top[@]}"
  local diff_id; diff_id=$(sha "$w/layer.tar")
  gzip -n -9 <"$w/layer.tar" >"$w/layer.tar.gz"
  local layer; layer=$(put_blob "$w/layer.tar.gz" "$w/layout")

  # Image config (no "created": it would make every build differ).
  printf '{"architecture":"%s","os":"linux","config":{"User":%s,"Entrypoint":[%s],"Env":[%s],"WorkingDir":"/","Labels":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/image.sh","comment":"one layer, built without Docker"}]}' \
    "$arch" "$(json_str "$user")" "$(json_str "$entrypoint")" "$env" "$labels" "$diff_id" >"$w/config.json"
  local config; config=$(put_blob "$w/config.json" "$w/layout")

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "${config% *}" "${config#* }" "${layer% *}" "${layer#* }" >"$w/manifest.json"
  local manifest; manifest=$(put_blob "$w/manifest.json" "$w/layout")

  # io.containerd.image.name is what `ctr images import` names the image; ref.name is the OCI
  # convention (the tag) for other tools such as skopeo or `kind load image-archive`.
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":%s,"org.opencontainers.image.ref.name":%s}}]}' \
    "${manifest% *}" "${manifest#* }" "$arch" "$(json_str "$ref")" "$(json_str "${ref##*:}")" >"$w/layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$w/layout/oci-layout"

  mkdir -p "$(dirname "$out")"
  det_tar "$w/layout" "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  echo "image $ref -> $out ($(stat -c %s "$out") bytes, manifest sha256:${manifest% *})"
}

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

if [ "${1:-}" = pack ]; then
  [ $# -ge 5 ] || { echo "usage: $0 pack ROOTFS REF OUT ENTRYPOINT [USER [ENV...]]" >&2; exit 2; }
  pack "$2" "$3" "$4" "$5" "${6:-0:0}" '{}' "${@:7}"
  exit 0
fi

OUT=${1:-$ROOT/bin/schemahook-image.tar}
IMAGE=${IMAGE:-localhost/schemahook:dev}
VERSION=${VERSION:-$(git -C "$ROOT" describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null || echo dev)}

RFS=$W/rootfs
mkdir -p "$RFS/etc" "$RFS/tmp"
chmod 1777 "$RFS/tmp" # like distroless: a world-writable sticky /tmp (an emptyDir usually covers it)

# Static, stripped, path-free binary: the image has no libc and must not depend on the build host.
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/schemahook/schemahook/hook/version.Version=$VERSION" \
  -o "$RFS/schemahook" ./hook/cmd/schemahook)
chmod 0755 "$RFS/schemahook"

# Same identities as distroless/static:nonroot, so files and logs look alike in both images.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$RFS/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$RFS/etc/group"
chmod 0644 "$RFS/etc/passwd" "$RFS/etc/group"
chmod 0755 "$RFS" "$RFS/etc"

LABELS="{\"org.opencontainers.image.title\":\"schemahook\",\"org.opencontainers.image.description\":\"Initializes or upgrades a PostgreSQL schema from a Helm hook Job\",\"org.opencontainers.image.source\":\"https://github.com/schemahook/schemahook\",\"org.opencontainers.image.version\":$(json_str "$VERSION")}"
ENV=()
if [ -n "${MIGRATIONS:-}" ]; then
  mkdir -p "$RFS/migrations"
  cp "$MIGRATIONS"/*.sql "$RFS/migrations/"
  chmod 0755 "$RFS/migrations" && chmod 0644 "$RFS/migrations"/*.sql
  ENV=(SCHEMAHOOK_MIGRATIONS=/migrations)
fi
pack "$RFS" "$IMAGE" "$OUT" /schemahook 65532:65532 "$LABELS" "${ENV[@]}"
