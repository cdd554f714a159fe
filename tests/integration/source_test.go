package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schemahook/schemahook/tests/pgtest"
)

// The binary carries no migrations: without a source, every command that reads them is a usage
// error naming the ways to give one, and the database is not touched.
func TestNoMigrationsSourceIsAUsageError(t *testing.T) {
	db := pgtest.New(t)
	noSource := []string{"SCHEMAHOOK_MIGRATIONS="} // clears the example set clitest.Env gives
	for _, args := range [][]string{{"update"}, {"check"}, {"status"}, {"plan"}, {"guard"}, {"lint"}} {
		r := cli(t, db.URL, noSource, args...)
		out := r.Stderr + r.Stdout
		if r.Code != exitUsage {
			t.Errorf("%v without migrations: exit %d, want %d (usage)\n%s", args, r.Code, exitUsage, out)
			continue
		}
		for _, says := range []string{"--migrations DIR", "SCHEMAHOOK_MIGRATIONS", "migrations.image", "migrations.configMap", "FROM the schemahook image"} {
			if !strings.Contains(out, says) {
				t.Errorf("%v without migrations does not name %q:\n%s", args, says, out)
			}
		}
	}
	c := db.Conn(t)
	for _, table := range []string{"schema_migrations", "schemahook_history", "accounts"} {
		if tableExists(t, c, table) {
			t.Errorf("after runs without migrations, table %s exists: the database was touched", table)
		}
	}
}

// Every run that reads migrations says where they came from: source, count and head.
func TestRunLogsMigrationsSource(t *testing.T) {
	db := pgtest.New(t)
	dir := writeDir(t, upTo(exampleFiles(t), 3))
	r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, "update")
	if r.Code != exitOK {
		t.Fatalf("update: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "migrations" {
			continue
		}
		if rec["source"] != dir || rec["count"] != float64(3) || rec["head"] != float64(3) || rec["head_name"] != "accounts_email_unique" {
			t.Fatalf("migrations log line = %v; want source %s, count 3, head 3 (accounts_email_unique)", rec, dir)
		}
		return
	}
	t.Fatalf("no \"migrations\" log line with source, count and head in:\n%s", r.Stderr)
}

// install-binary copies the running executable, so an image without a shell or cp can get it
// from an init container; the copy runs.
func TestInstallBinaryCopiesItself(t *testing.T) {
	dir := t.TempDir()
	if r := cli(t, "", nil, "install-binary", dir); r.Code != exitOK {
		t.Fatalf("install-binary: exit %d\n%s", r.Code, r.Stderr)
	}
	dst := filepath.Join(dir, "schemahook")
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v, mode %v; want mode 0755", err, fi)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".schemahook-*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	out, err := exec.Command(dst, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "schemahook ") {
		t.Fatalf("running the copy: %v, output %q", err, out)
	}
	if r := cli(t, "", nil, "install-binary", filepath.Join(dir, "missing")); r.Code != exitUsage || !strings.Contains(r.Stderr, "not a directory") {
		t.Fatalf("install-binary into a missing directory: exit %d, %s; want %d saying \"not a directory\"", r.Code, r.Stderr, exitUsage)
	}
}
