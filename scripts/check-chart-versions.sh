#!/usr/bin/env bash
# make check-chart-versions: every chart whose files changed since it was released carries a new
# version, as chart-testing's `ct lint` demands of a pull request. A release is a git tag
# `<chart>-<version>` (chart-releaser's format) on the commit it was built from.
#
# For each charts/<dir>/Chart.yaml:
# - its version is tagged: the directory (work tree, untracked files included) must be identical
#   to the tag's, else the chart changed after its release without a version bump;
# - its version is not tagged: it must be above every tagged version of that chart;
# - CHART_BASE_REF is set (a pull request's target, e.g. origin/main): a chart whose directory
#   differs from that ref must have a version above the ref's, as `ct lint` checks.
# Without any chart tag (a shallow clone fetches none) there is nothing to compare with: it says so
# and passes.
set -euo pipefail
cd "${1:-$(git rev-parse --show-toplevel)}"

# field FILE KEY: a top-level scalar of a Chart.yaml (name, version), without quotes.
field() { sed -n "s/^$2:[[:space:]]*[\"']\{0,1\}\([^\"'[:space:]#]*\).*/\1/p" "$1" | head -n 1; }

semver_re='^([0-9]+)\.([0-9]+)\.([0-9]+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'

# semver_gt A B: A > B by SemVer precedence (build metadata ignored; a pre-release is below its
# release; pre-release identifiers compared as a whole, numerically when both are numbers).
semver_gt() {
  [[ $1 =~ $semver_re ]] || return 1
  local a=("${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}") ap=${BASH_REMATCH[4]#-}
  [[ $2 =~ $semver_re ]] || return 0
  local b=("${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}") bp=${BASH_REMATCH[4]#-}
  local i
  for i in 0 1 2; do
    ((10#${a[i]} > 10#${b[i]})) && return 0
    ((10#${a[i]} < 10#${b[i]})) && return 1
  done
  [[ -z $ap && -n $bp ]] && return 0
  [[ -n $ap && -z $bp ]] && return 1
  [[ -z $ap ]] && return 1
  [[ $ap =~ ^[0-9]+$ && $bp =~ ^[0-9]+$ ]] && { ((10#$ap > 10#$bp)); return; }
  [[ $ap > $bp ]]
}

# changed_since REF DIR: the directory differs from REF's, counting uncommitted and untracked files.
changed_since() {
  ! git diff --quiet "$1" -- "$2" || [[ -n $(git ls-files --others --exclude-standard -- "$2") ]]
}

if [[ -z $(git tag -l '*-[0-9]*.[0-9]*.[0-9]*') ]]; then
  echo "check-chart-versions: no <chart>-<version> tags in this clone (a shallow clone has none; git fetch --tags): nothing to compare with, skipped"
  exit 0
fi

status=0
fail() { echo "check-chart-versions: $*" >&2; status=1; }

for chart_yaml in charts/*/Chart.yaml; do
  dir=$(dirname "$chart_yaml")
  name=$(field "$chart_yaml" name)
  version=$(field "$chart_yaml" version)
  if [[ ! $version =~ $semver_re ]]; then
    fail "$chart_yaml: version '$version' is not a SemVer version: set it to MAJOR.MINOR.PATCH"
    continue
  fi
  if git rev-parse -q --verify "refs/tags/$name-$version" >/dev/null; then
    if changed_since "$name-$version" "$dir"; then
      fail "$dir changed since $name-$version was released: bump version in $chart_yaml"
    else
      echo "check-chart-versions: $dir is $name-$version as released"
    fi
  else
    newest=""
    while read -r tag; do
      v=${tag#"$name"-}
      [[ $v =~ $semver_re ]] || continue
      if ! semver_gt "$version" "$v"; then
        fail "$chart_yaml: version $version is not above the released $tag: set a version above every released one"
      fi
      if [[ -z $newest ]] || semver_gt "$v" "$newest"; then newest=$v; fi
    done < <(git tag -l "$name-*")
    echo "check-chart-versions: $dir is $name-$version, unreleased${newest:+ (last release $name-$newest)}"
  fi
  if [[ -n ${CHART_BASE_REF:-} ]] && changed_since "$CHART_BASE_REF" "$dir"; then
    if base=$(git show "$CHART_BASE_REF:$chart_yaml" 2>/dev/null); then
      base_version=$(field <(printf '%s\n' "$base") version)
      if ! semver_gt "$version" "$base_version"; then
        fail "$dir changed since $CHART_BASE_REF, which has version $base_version: bump version in $chart_yaml above it"
      fi
    fi
  fi
done
exit $status
