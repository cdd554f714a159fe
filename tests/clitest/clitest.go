// Package clitest runs the schemahook binary the way users and the chart do — settings in the
// environment, JSON logs — for the test packages that drive the CLI (integration, authoring,
// reliability).
package clitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schemahook/schemahook/tests/pgtest"
)

var binary string

// Main is a TestMain: it takes the binary from $SCHEMAHOOK_BIN (the Makefile builds it once)
// or builds it into a temp dir, runs the tests with pgtest's server lifecycle, and removes
// what it built.
func Main(m *testing.M) { os.Exit(MainCode(m)) }

// MainCode is Main returning the exit code, for a TestMain with more to set up and clean up.
func MainCode(m *testing.M) int {
	binary = os.Getenv("SCHEMAHOOK_BIN")
	var tmp string
	if binary == "" {
		var err error
		if tmp, err = build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binary = filepath.Join(tmp, "schemahook")
	}
	code := pgtest.Run(m)
	if tmp != "" {
		_ = os.RemoveAll(tmp)
	}
	return code
}

// BuildTool builds the main package pkg of a tool that tests/go.mod pins with a tool
// directive (e.g. golang-migrate's CLI), with build tags, into dir, and returns the binary's
// path. It runs in the tests module, so the version is the pinned one, never another.
func BuildTool(dir, pkg, tags string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	root, err := filepath.Abs("..") // a test runs in its package's directory, one below tests/
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

func build() (string, error) {
	dir, err := os.MkdirTemp("", "schemahook-bin-")
	if err != nil {
		return "", err
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "schemahook"), "./hook/cmd/schemahook")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building schemahook: %w\n%s", err, out)
	}
	return dir, nil
}

// Binary is the path of the schemahook executable under test (set by Main).
func Binary() string { return binary }

// Env returns the process environment without the developer's database settings (PG*,
// SCHEMAHOOK_*, DATABASE_URL), which would leak into the binary's configuration, plus JSON logs
// and the example migrations.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "SCHEMAHOOK_") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "SCHEMAHOOK_LOG_FORMAT=json", "SCHEMAHOOK_MIGRATIONS="+ExampleDir())
}

// ExampleDir is the repository's example schema (migrations/). Env gives it to every run
// because the binary carries no migrations; a test's own SCHEMAHOOK_MIGRATIONS, appended
// later, wins (os/exec uses the last value of a duplicated variable).
func ExampleDir() string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "migrations"))
	if err != nil {
		panic(err)
	}
	return dir
}

// Result of one run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs the binary with Env() plus env and waits (3 minutes at most); the output goes to
// the test log. A failure to start the process fails the test.
func Run(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(Env(), env...)
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
	return Result{out.String(), errb.String(), code}
}

// WriteDir writes files (name → content) into a new temp directory and returns it.
func WriteDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Buffer collects output that one goroutine writes while another reads it: a process's output
// copier or a logger, and a test polling for a line.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
