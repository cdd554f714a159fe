#!/usr/bin/env bash
# release-tags.sh: in a clone that has no chart release tags (<chart>-<version>, as chart-releaser
# names them), tag each earlier chart version at its release point, read from history: the parent
# of the commit that moved charts/<chart>/Chart.yaml away from that version. The tags stay local.
# The chart-version check and the upgrade tests from the previous release read these tags; a
# clone that has them (git fetch --tags) is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
version_at() { git show "$1:charts/$2/Chart.yaml" 2>/dev/null | awk '$1 == "version:" {print $2; exit}'; }
for dir in charts/*/; do
  chart=$(basename "$dir")
  [ -f "$dir/Chart.yaml" ] || continue
  if [ -n "$(git tag -l "$chart-*")" ]; then continue; fi
  for c in $(git log --format=%H -- "$dir/Chart.yaml"); do
    git rev-parse -q --verify "$c^" >/dev/null || continue
    old=$(version_at "$c^" "$chart") new=$(version_at "$c" "$chart")
    if [ -z "$old" ] || [ "$old" = "$new" ] || git rev-parse -q --verify "refs/tags/$chart-$old" >/dev/null; then continue; fi
    git tag "$chart-$old" "$c^"
    echo "release-tags: $chart-$old at $(git rev-parse --short "$c^") (no release tags in this clone; read from history)"
  done
done
