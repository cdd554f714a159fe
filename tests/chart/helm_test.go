package chart_test

import (
	"io"
	"log"
	"log/slog"
	"os"
	"testing"
)

// TestMain silences what the SDKs log while loading charts (a note per symbolic link, example-app's
// migrations/): Helm 3 logs through the standard logger, Helm 4 through slog. TestLintStrict keeps
// the lint messages with its own output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// helm is one major version of Helm's SDK (helm.sh/helm/v3 or helm.sh/helm/v4), behind the few
// actions the chart tests need. Each backend loads the chart from disk with its own loader and runs
// its own install, upgrade and lint actions, so a chart that only one major renders, validates or
// lints fails under that major's subtest. Assertions look at what the chart rendered and at the
// chart's own error messages, never at Helm's wording, which differs between the majors.
type helm interface {
	// name is the subtest name: "helm3" or "helm4".
	name() string
	// render runs `helm install` as a client-only dry run: Helm validates the values against the
	// schemas, renders the templates and parses the hooks exactly as it does on a real install,
	// but talks to no cluster. upgrade renders as the dry run of an upgrade does
	// (.Release.IsUpgrade).
	render(t *testing.T, src chartSrc, values map[string]any, upgrade bool) (*rendered, error)
	// lint runs `helm lint --strict` on a chart directory (dependencies under its charts/).
	lint(t *testing.T, dir string, values map[string]any) lintResult
	// newCluster is Helm's own test kit: in-memory release storage and the SDK's fake Kubernetes
	// client, which accepts every object and every wait. With a recorder, the client also tells
	// it what Helm does (see hookRecorder).
	newCluster(t *testing.T, rec *hookRecorder) cluster
}

// cluster runs real install, upgrade and rollback actions against in-memory release storage.
type cluster interface {
	install(src chartSrc, values map[string]any) (*rendered, error)
	upgrade(src chartSrc, values map[string]any, opts upgradeOptions) (*rendered, error)
	// rollback is `helm rollback <release> <revision>`.
	rollback(revision int) error
	// lastStatus is the status of the release's newest revision ("deployed", "pending-rollback", …).
	lastStatus() string
}

// upgradeOptions are the `helm upgrade` flags about values.
type upgradeOptions struct {
	// reuseValues is --reuse-values: the previous release's values (the old chart's defaults
	// merged with the user's), plus the new --set values, replace the new chart's defaults.
	reuseValues bool
	// resetThenReuseValues is --reset-then-reuse-values: the new chart's defaults, then the
	// previous release's user-supplied values, then the new ones.
	resetThenReuseValues bool
}

// lintResult is what `helm lint` reports about one chart.
type lintResult struct {
	linted   int
	messages []string
	errors   []error
}

// helms are the SDKs every chart test runs against.
var helms = []helm{helm3{}, helm4{}}

// forEachHelm runs f once per SDK, as the subtests helm3 and helm4.
func forEachHelm(t *testing.T, f func(t *testing.T, h helm)) {
	t.Helper()
	for _, h := range helms {
		t.Run(h.name(), func(t *testing.T) { f(t, h) })
	}
}

// chartSrc is a chart directory and the charts to use as its dependencies: what
// `helm dependency build` would put under charts/, without depending on whether someone ran it,
// and without picking up a stale copy if they did.
type chartSrc struct {
	dir  string
	deps []chartSrc
}

// rendered is a rendered release, in terms common to both SDKs.
type rendered struct {
	// Manifest is the release's ordinary objects, as Helm stores them.
	Manifest string
	// Hooks are Helm's parse of the hook objects.
	Hooks []*hook
	Notes string
	// Config is the values the user supplied (Helm's release Config), Values the values the
	// templates saw.
	Config map[string]any
	Chart  string // name-version of the chart the release was rendered from
}

// hook is Helm's parse of one hook object: its annotations as Helm understood them. An
// annotation Helm does not understand is missing here, and an object whose hook event Helm does
// not know is not a hook at all.
type hook struct {
	Name, Kind, Path, Manifest string
	Events                     []string
	Weight                     int
	DeletePolicies             []string
	OutputLogPolicies          []string
}

// Hook events and policies, spelled as both majors' release packages spell them.
const (
	evPreInstall   = "pre-install"
	evPreUpgrade   = "pre-upgrade"
	evPreRollback  = "pre-rollback"
	evPostInstall  = "post-install"
	evTest         = "test"
	policyBefore   = "before-hook-creation"
	policySuccess  = "hook-succeeded"
	policyFailed   = "hook-failed"
	logOnSucceeded = "hook-succeeded"
	logOnFailed    = "hook-failed"
)

func render(t *testing.T, h helm, src chartSrc, values map[string]any, upgrade bool) (*rendered, error) {
	t.Helper()
	return h.render(t, src, values, upgrade)
}

func mustRender(t *testing.T, h helm, src chartSrc, values map[string]any) *rendered {
	t.Helper()
	rel, err := h.render(t, src, values, false)
	if err != nil {
		t.Fatalf("render %s with %s: %v", src.dir, h.name(), err)
	}
	return rel
}
