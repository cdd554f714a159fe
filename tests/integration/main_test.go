// Package integration tests the schemahook engine and CLI against a real PostgreSQL server
// (see tests/pgtest for where the server comes from).
package integration

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/source"
	"github.com/schemahook/schemahook/migrations"
	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// migrateBin is golang-migrate's CLI, the version tests/go.mod pins (tool directive), built
// with its pgx v5 driver (URL scheme pgx5://) by TestMain.
var migrateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "schemahook-migrate-")
	if err == nil {
		migrateBin, err = clitest.BuildTool(dir, "github.com/golang-migrate/migrate/v4/cmd/migrate", "pgx5")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := clitest.MainCode(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
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
func writeDir(t testing.TB, files map[string]string) string { return clitest.WriteDir(t, files) }

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

func versionRow(t testing.TB, c *pgx.Conn) (int, bool)        { return pgtest.VersionRow(t, c) }
func tableExists(t testing.TB, c *pgx.Conn, name string) bool { return pgtest.TableExists(t, c, name) }
func historyVersions(t testing.TB, c *pgx.Conn) []int         { return pgtest.HistoryVersions(t, c) }

type result = clitest.Result

// cli runs the schemahook binary with the database URL in the environment (never in args).
func cli(t testing.TB, dbURL string, env []string, args ...string) result {
	t.Helper()
	if dbURL != "" {
		env = append([]string{"SCHEMAHOOK_DATABASE_URL=" + dbURL}, env...)
	}
	return clitest.Run(t, env, args...)
}
