package chart_test

import (
	"io"
	"log"
	"path/filepath"
	"testing"
)

// TestLintStrict runs `helm lint --strict` with both SDKs' lint actions on both charts, with their
// default values and with every ci values file, as chart-testing does (ct.yaml passes --strict).
// Strict turns warnings into errors.
func TestLintStrict(t *testing.T) {
	// Lint mode reports skipped `required` checks through the standard logger; keep them with this
	// test's output instead of interleaving them with other packages'.
	log.SetOutput(testLogWriter{t})
	t.Cleanup(func() { log.SetOutput(io.Discard) })

	// example-app is linted from a copy whose charts/ holds this tree's schemahook chart: lint
	// reports a missing dependency otherwise, and must not see a stale `helm dependency build`.
	work := t.TempDir()
	schemahook := filepath.Join(work, "schemahook")
	exampleApp := filepath.Join(work, "example-app")
	copyDir(t, schemahookDir, schemahook)
	copyDir(t, exampleAppDir, exampleApp)
	copyDir(t, schemahookDir, filepath.Join(exampleApp, "charts", "schemahook"))

	for _, c := range []struct {
		name, dir  string
		valueFiles []string
	}{
		{"schemahook", schemahook, ciValuesFiles(t, schemahookDir)},
		{"example-app", exampleApp, ciValuesFiles(t, exampleAppDir)},
	} {
		for _, vf := range append([]string{""}, c.valueFiles...) {
			name := c.name + "/defaults"
			values := map[string]any{}
			if vf != "" {
				name = c.name + "/" + filepath.Base(vf)
				values = valuesFile(t, vf)
			}
			t.Run(name, func(t *testing.T) {
				forEachHelm(t, func(t *testing.T, sdk helm) {
					res := sdk.lint(t, c.dir, values)
					for _, m := range res.messages {
						t.Logf("lint: %s", m)
					}
					if res.linted != 1 {
						t.Errorf("linted %d charts, want 1", res.linted)
					}
					for _, err := range res.errors {
						t.Errorf("lint --strict: %v", err)
					}
				})
			})
		}
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("helm: %s", p)
	return len(p), nil
}
