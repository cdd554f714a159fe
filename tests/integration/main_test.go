// Package integration tests the schemahook engine and CLI against a real PostgreSQL server
// (see tests/pgtest for where the server comes from).
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/source"
	"github.com/schemahook/schemahook/migrations"
	"github.com/schemahook/schemahook/tests/pgtest"
)

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

// exampleFiles returns the embedded example migrations by file name.
func exampleFiles(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// upTo keeps the files of versions ≤ v.
func upTo(files map[string]string, v int) map[string]string {
	out := map[string]string{}
	for name, body := range files {
		var n int
		fmt.Sscanf(name, "%d_", &n)
		if n <= v {
			out[name] = body
		}
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

func load(t testing.TB, dir string) *source.Catalog {
	t.Helper()
	c, err := source.Load(os.DirFS(dir), ".")
	if err != nil {
		t.Fatalf("loading %s: %v", dir, err)
	}
	return c
}

// testLogger writes the runner's log into the test log (visible with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newRunner(t testing.TB, db *pgtest.DB, dir string, d pgdriver.Options) *runner.Runner {
	t.Helper()
	cfg, err := dbconn.Config(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	d.AppliedBy = "integration-test"
	return runner.New(cfg, load(t, dir), runner.WithLogger(testLogger(t)), runner.WithDriverOptions(d))
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// versionRow reads schema_migrations directly: (version, dirty), or (-1, false) when empty.
func versionRow(t testing.TB, c *pgx.Conn) (int, bool) {
	t.Helper()
	var v int
	var dirty bool
	err := c.QueryRow(context.Background(), "SELECT version, dirty FROM schema_migrations").Scan(&v, &dirty)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, false
	}
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return v, dirty
}

func tableExists(t testing.TB, c *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := c.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func historyVersions(t testing.TB, c *pgx.Conn) []int {
	t.Helper()
	rows, _ := c.Query(context.Background(), "SELECT version FROM schemahook_history ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("reading history: %v", err)
	}
	return vs
}

// result of one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the schemahook binary with the database URL in the environment (never in args).
func cli(t testing.TB, dbURL string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), "SCHEMAHOOK_LOG_FORMAT=json")
	if dbURL != "" {
		cmd.Env = append(cmd.Env, "SCHEMAHOOK_DATABASE_URL="+dbURL)
	}
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
