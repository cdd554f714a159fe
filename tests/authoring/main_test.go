// Package authoring tests the commands that help write migrations — verify, lint and diagram —
// through the schemahook binary, against a real PostgreSQL server (see tests/pgtest). Textual
// outputs are compared with golden files in testdata/; run with -update to rewrite them.
package authoring

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/schemahook/schemahook/tests/clitest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { clitest.Main(m) }

// Exit codes as documented in the README and `schemahook --help`.
const (
	exitOK            = 0
	exitUsage         = 2
	exitFailed        = 3
	exitTimeout       = 7
	exitVerifyFailed  = 9
	exitLintFindings  = 10
	unreachableServer = "postgres://nobody@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=2"
)

type result = clitest.Result

// run runs the schemahook binary with a clean environment plus env.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return clitest.Run(t, env, args...)
}

func wantCode(t testing.TB, r result, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.Code, code, r.Stdout, r.Stderr)
	}
}

// golden compares got with testdata/NAME.golden, or writes it with -update.
func golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// exampleFiles returns the repository's example migrations by file name.
func exampleFiles(t testing.TB) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("../../migrations/*.sql")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no example migrations found: %v", err)
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = string(b)
	}
	return out
}

// writeDir writes files into a new temp directory.
func writeDir(t testing.TB, files map[string]string) string { return clitest.WriteDir(t, files) }

func migrationsEnv(dir string) string { return "SCHEMAHOOK_MIGRATIONS=" + dir }
