#!/usr/bin/env bash
# previous-release.sh: prints the git tag of the previous released schemahook chart, the newest
# schemahook-<version> tag other than this tree's chart version (nothing when the clone has no
# such tag). The e2e upgrade from the previous release builds its charts and image from it.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cur=$(awk '$1 == "version:" {print $2; exit}' "$REPO/charts/schemahook/Chart.yaml")
git -C "$REPO" tag -l 'schemahook-*' --sort=-v:refname | grep -vx "schemahook-$cur" | head -n 1 || true
