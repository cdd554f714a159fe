package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"sigs.k8s.io/yaml"
)

// TestUpgradeFromPreviousChartVersion: `helm upgrade --reuse-values` from a release made with the
// previous released chart version (git tag <chart>-<version>) works with this chart, as does
// --reset-then-reuse-values. --reuse-values renders the new templates with the old release's values
// (the old chart's defaults merged with the user's), so every value added since is missing: the
// templates must treat a missing value as its default. The upgraded release must have the same
// objects and hooks as a fresh install of this chart with the same settings.
func TestUpgradeFromPreviousChartVersion(t *testing.T) {
	for _, tc := range []struct {
		chart string
		src   chartSrc
		p     string
	}{
		{"schemahook", loadSchemahook(t), ""},
		{"example-app", loadExampleApp(t), "schemahook."},
	} {
		prev, version := previousRelease(t, tc.chart)
		first := []string{tc.p + "database.host=pg.example", tc.p + "database.existingSecret=pg", tc.p + "config.updateSchema=true"}
		if tc.chart == "schemahook" {
			first = append(first, "gate.existingSecret=pg-gate", "metrics.enabled=true")
		}
		// The second step of the documented flow: turn the schema update off again.
		second := []string{tc.p + "config.updateSchema=false"}
		for _, mode := range []struct {
			name string
			opts upgradeOptions
		}{
			{"reuse-values", upgradeOptions{reuseValues: true}},
			{"reset-then-reuse-values", upgradeOptions{resetThenReuseValues: true}},
		} {
			t.Run(tc.chart+"-"+version+"/"+mode.name, func(t *testing.T) {
				forEachHelm(t, func(t *testing.T, sdk helm) {
					cl := sdk.newCluster(t, nil)
					if _, err := cl.install(prev, vals(t, first...)); err != nil {
						t.Fatalf("install with the released %s-%s: %v", tc.chart, version, err)
					}
					for _, step := range [][]string{first, second} {
						got, err := cl.upgrade(tc.src, vals(t, step...), mode.opts)
						if err != nil {
							t.Fatalf("helm upgrade --%s %q from %s-%s: %v", mode.name, step, tc.chart, version, err)
						}
						want := mustRender(t, sdk, tc.src, vals(t, append(slices.Clone(first), step...)...))
						if a, b := objectKeys(t, got), objectKeys(t, want); !slices.Equal(a, b) {
							t.Errorf("upgrade --%s %q rendered\n  %v\nwant what a fresh install renders:\n  %v", mode.name, step, a, b)
						}
					}
				})
			})
		}
	}
}

// objectKeys lists a release's objects as "Kind/name" and its hooks as "hook Kind/name events".
func objectKeys(t *testing.T, rel *rendered) []string {
	t.Helper()
	var out []string
	for _, o := range objects(t, rel) {
		k := o.String()
		if o.Hook != nil {
			k = "hook " + k + " " + strings.Join(o.Hook.Events, ",")
		}
		out = append(out, k)
	}
	return out
}

// previousRelease extracts the newest released version of a chart below the one in this tree
// (the git tag <chart>-<version>, as chart-releaser names it) into a temporary directory, with
// the schemahook chart of the same commit as its dependency.
func previousRelease(t *testing.T, chart string) (chartSrc, string) {
	t.Helper()
	var meta struct{ Version string }
	b, err := os.ReadFile(filepath.Join("testdata/charts", chart, "Chart.yaml"))
	if err != nil || yaml.Unmarshal(b, &meta) != nil {
		t.Fatalf("reading %s/Chart.yaml: %v", chart, err)
	}
	current := semver.MustParse(meta.Version)
	out, err := exec.Command("git", "tag", "-l", chart+"-*").Output()
	if err != nil {
		t.Fatalf("git tag: %v", err)
	}
	var prev *semver.Version
	var tag string
	for _, name := range strings.Fields(string(out)) {
		v, err := semver.StrictNewVersion(strings.TrimPrefix(name, chart+"-"))
		if err != nil || !v.LessThan(current) || (prev != nil && !v.GreaterThan(prev)) {
			continue
		}
		prev, tag = v, name
	}
	if prev == nil {
		t.Fatalf("no git tag %s-<version> below %s: this test needs the release tags (git fetch --tags; CI checks out with fetch-depth 0)", chart, current)
	}
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C ../.. archive "$1" charts migrations | tar -x -C "$2"`, "sh", tag, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", tag, err, out)
	}
	// migrations/ too: example-app's migrations/ is a link to it.
	src := chartSrc{dir: filepath.Join(dir, "charts", chart)}
	if chart != "schemahook" {
		src.deps = []chartSrc{{dir: filepath.Join(dir, "charts", "schemahook")}}
	}
	return src, prev.String()
}
