// Package authoring tests the commands that help write migrations — verify, lint and diagram —
// through the schemahook binary, against a real PostgreSQL server (see tests/pgtest). Textual
// outputs are compared with golden files in testdata/; run with -update to rewrite them.
package authoring

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schemahook/schemahook/tests/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// binary is the schemahook executable under test: $SCHEMAHOOK_BIN, or built once here.
var binary string

func TestMain(m *testing.M) {
	binary = os.Getenv("SCHEMAHOOK_BIN")
	if binary == "" {
		dir, err := os.MkdirTemp("", "schemahook-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binary = filepath.Join(dir, "schemahook")
		cmd := exec.Command("go", "build", "-o", binary, "./hook/cmd/schemahook")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building schemahook: %v\n%s", err, out)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	pgtest.Main(m)
}

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

type result struct {
	stdout, stderr string
	code           int
}

// run runs the schemahook binary with a clean environment plus env.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), "SCHEMAHOOK_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running schemahook %v: %v", args, err)
	}
	t.Logf("schemahook %s → exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{out.String(), errb.String(), code}
}

// cleanEnv drops settings of the developer's shell that would leak into the binary's config.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "SCHEMAHOOK_") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func wantCode(t testing.TB, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
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
func writeDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func migrationsEnv(dir string) string { return "SCHEMAHOOK_MIGRATIONS=" + dir }
