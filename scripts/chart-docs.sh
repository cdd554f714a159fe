#!/usr/bin/env bash
# make chart-docs: regenerate each chart's README.md from its README.md.gotmpl (the prose) and the
# `# --` comments in its values.yaml (the values table), with helm-docs pinned as a tool of the
# tests module. Optional argument: the directory of the charts (default: the repository's charts/);
# the chart tests run it on a copy and fail when a README.md differs from what it generates.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
charts=$(realpath "${1:-$root/charts}")
cd "$root/tests"
# file order keeps the table in values.yaml's order, which groups related keys.
go tool helm-docs --chart-search-root "$charts" --sort-values-order file --log-level warning
