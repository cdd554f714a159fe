#!/usr/bin/env bash
# previous-release.sh: prints the git tag of the previous released schemahook chart, the newest
# schemahook-<version> tag whose version sorts below this tree's chart version (nothing when the
# clone has no such tag), so an older branch never "upgrades" from a newer release. The e2e upgrade from the previous release builds its charts and image from it.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cur=$(awk '$1 == "version:" {print $2; exit}' "$REPO/charts/schemahook/Chart.yaml")
prev=
for v in $(git -C "$REPO" tag -l 'schemahook-*' | sed 's/^schemahook-//' | sort -V); do
  if [ "$v" != "$cur" ] && [ "$(printf '%s\n%s\n' "$v" "$cur" | sort -V | head -n 1)" = "$v" ]; then prev=$v; fi
done
if [ -n "$prev" ]; then echo "schemahook-$prev"; fi
