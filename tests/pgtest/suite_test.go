package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// suite runs `go test` on testdata/needsdb, a package that needs PostgreSQL, with env on top of
// an environment stripped of every setting that would pick a server, and a TMPDIR of its own.
// It returns the output, whether it passed, the backend lines and what was left in TMPDIR.
func suite(t *testing.T, env ...string) (out string, ok bool, backend string, left []string) {
	t.Helper()
	tmp, err := os.MkdirTemp("", "pgtest-suite-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil { // the server runs as postgres when we are root
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "backend.log")
	cmd := exec.Command("go", "test", "-count=1", "-v", "./testdata/needsdb")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "CI" || strings.HasPrefix(k, "SCHEMAHOOK_TEST_") || k == "TMPDIR" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, append([]string{"TMPDIR=" + tmp, BackendLogEnv + "=" + logFile}, env...)...)
	b, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(logFile)
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "schemahook-pgtest-") {
			left = append(left, e.Name())
		}
	}
	return string(b), err == nil, strings.TrimSpace(string(log)), left
}

// A suite that needs PostgreSQL fails when none answers, even outside CI, and says so.
func TestSuiteFailsWithoutItsDatabase(t *testing.T) {
	out, ok, backend, _ := suite(t, "SCHEMAHOOK_TEST_DATABASE_URL=postgres://postgres:pw@127.0.0.1:1/postgres?connect_timeout=2")
	if ok || !strings.Contains(out, "needs PostgreSQL") || !strings.Contains(out, SkipEnv+"=1") {
		t.Fatalf("passed=%t with an unreachable database, want a failure naming %s:\n%s", ok, SkipEnv, out)
	}
	if !strings.Contains(backend, "needsdb: no PostgreSQL") {
		t.Errorf("backend line %q, want it to say there was no PostgreSQL", backend)
	}
	if strings.Contains(out+backend, "pw@") {
		t.Errorf("the password shows:\n%s", out)
	}
}

// The opt-out skips instead, and says why.
func TestSuiteSkipsWithOptOut(t *testing.T) {
	out, ok, _, _ := suite(t, "SCHEMAHOOK_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2", SkipEnv+"=1")
	if !ok || !strings.Contains(out, "--- SKIP: TestNeedsDB") || !strings.Contains(out, SkipEnv+"=1") {
		t.Fatalf("passed=%t, want the test skipped under %s=1:\n%s", ok, SkipEnv, out)
	}
}

// With local server binaries the suite passes, names the server it used, and leaves nothing
// of it in TMPDIR.
func TestSuiteLocalServerLeavesNothing(t *testing.T) {
	if _, err := serverBin(); err != nil {
		Unavailable(t, "needs PostgreSQL server binaries (apt-get install postgresql): "+err.Error())
	}
	out, ok, backend, left := suite(t)
	if !ok {
		t.Fatalf("the suite failed with local server binaries:\n%s", out)
	}
	if !strings.HasPrefix(backend, "pgtest: needsdb: PostgreSQL ") || !strings.Contains(backend, "from local server binaries") {
		t.Errorf("backend line %q, want the server's version and source", backend)
	}
	if len(left) > 0 {
		t.Errorf("left in TMPDIR after the run: %v", left)
	}
}
