package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"sigs.k8s.io/yaml"
)

// TestCheckChartVersions runs scripts/check-chart-versions.sh (make check-chart-versions, part of
// make lint) in a scratch repository: a chart that changed since its release tag without a version
// bump fails, as `ct lint` fails such a pull request; so does a version at or below a released
// one, or, with CHART_BASE_REF, at or below the base's. A bumped chart passes, and a clone
// without tags passes with a note.
func TestCheckChartVersions(t *testing.T) {
	script, err := filepath.Abs("../../scripts/check-chart-versions.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "tag.gpgSign=false", "-c", "commit.gpgSign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(path, content string) {
		t.Helper()
		full := filepath.Join(repo, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chartYAML := func(version string) string {
		return "apiVersion: v2\nname: demo\n# bump on every change\nversion: " + version + "\nappVersion: \"1.0\"\n"
	}
	check := func(name string, env []string, wantOK bool, want string) {
		t.Helper()
		cmd := exec.Command(script, repo)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if ok := err == nil; ok != wantOK {
			t.Errorf("%s: passed=%t, want %t:\n%s", name, ok, wantOK, out)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: output does not say %q:\n%s", name, want, out)
		}
	}

	git("init", "-q", "-b", "main")
	write("charts/demo/Chart.yaml", chartYAML("0.1.0"))
	write("charts/demo/values.yaml", "replicas: 1\n")
	git("add", "-A")
	git("commit", "-q", "-m", "demo 0.1.0")
	check("no tags", nil, true, "no <chart>-<version> tags")

	git("tag", "-a", "-m", "demo 0.1.0", "demo-0.1.0")
	check("as released", nil, true, "charts/demo is demo-0.1.0 as released")

	write("charts/demo/values.yaml", "replicas: 2\n")
	check("changed, not committed", nil, false, "charts/demo changed since demo-0.1.0 was released: bump version in charts/demo/Chart.yaml")
	write("charts/demo/templates/new.yaml", "kind: ConfigMap\n")
	git("add", "-A")
	git("commit", "-q", "-m", "change")
	check("changed and committed", nil, false, "charts/demo changed since demo-0.1.0 was released")

	write("charts/demo/Chart.yaml", chartYAML("0.1.0-rc.1"))
	check("pre-release below the release", nil, false, "version 0.1.0-rc.1 is not above the released demo-0.1.0")

	write("charts/demo/Chart.yaml", chartYAML("0.2.0"))
	check("bumped", nil, true, "charts/demo is demo-0.2.0, unreleased (last release demo-0.1.0)")
	git("add", "-A")
	git("commit", "-q", "-m", "demo 0.2.0")

	// A pull request against a base that already has 0.2.0 and a different chart.
	git("branch", "base")
	write("charts/demo/values.yaml", "replicas: 3\n")
	git("add", "-A")
	git("commit", "-q", "-m", "change again")
	check("changed since the base without a bump", []string{"CHART_BASE_REF=base"}, false,
		"charts/demo changed since base, which has version 0.2.0: bump version in charts/demo/Chart.yaml above it")
	write("charts/demo/Chart.yaml", chartYAML("0.2.1"))
	check("bumped above the base", []string{"CHART_BASE_REF=base"}, true, "demo-0.2.1, unreleased")
}

// TestExampleAppAcceptsTheLocalSchemahook: example-app's dependency range accepts this tree's
// schemahook version, or `helm dependency build` (and ct) would refuse the local chart after a
// version bump.
func TestExampleAppAcceptsTheLocalSchemahook(t *testing.T) {
	var app struct {
		Dependencies []struct{ Name, Version string }
	}
	var sh struct{ Version string }
	for path, v := range map[string]any{exampleAppDir + "/Chart.yaml": &app, schemahookDir + "/Chart.yaml": &sh} {
		b, err := os.ReadFile(path)
		if err != nil || yaml.Unmarshal(b, v) != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
	}
	if len(app.Dependencies) != 1 || app.Dependencies[0].Name != "schemahook" {
		t.Fatalf("example-app dependencies %+v, want schemahook alone", app.Dependencies)
	}
	c, err := semver.NewConstraint(app.Dependencies[0].Version)
	if err != nil {
		t.Fatalf("example-app's schemahook range %q: %v", app.Dependencies[0].Version, err)
	}
	if !c.Check(semver.MustParse(sh.Version)) {
		t.Errorf("example-app's schemahook range %q does not accept the local schemahook %s", app.Dependencies[0].Version, sh.Version)
	}
}
