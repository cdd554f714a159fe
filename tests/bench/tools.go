package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Module versions of the peers; go.mod pins them, the build reads them back for the report.
const (
	migrateModule = "github.com/golang-migrate/migrate/v4"
	gooseModule   = "github.com/pressly/goose/v3"
)

// gooseTags leave out every database driver but PostgreSQL, using the build tags goose
// documents for that. A lean binary starts faster, so this favours goose, not schemahook.
const gooseTags = "no_clickhouse no_libsql no_mssql no_mysql no_sqlite3 no_vertica no_ydb"

// binaries are the executables under test, built from source for this run.
type binaries struct {
	schemahook, migrate, goose, psql string
	migrateVersion, gooseVersion     string
}

// build compiles schemahook the way the image does (static, stripped, path-free) and the peers
// from their pinned modules with the same flags, so that binary size and start-up compare.
// golang-migrate's CLI gets its PostgreSQL driver on pgx v5 from the pgx5 build tag
// (internal/cli/build_pgxv5.go); its file source is always built in.
func build(ctx context.Context, root, benchDir, out, pgbin string) (binaries, error) {
	b := binaries{
		schemahook: filepath.Join(out, "schemahook"),
		migrate:    filepath.Join(out, "migrate"),
		goose:      filepath.Join(out, "goose"),
		// The server's own psql: Debian's /usr/bin/psql is a Perl wrapper that would add its
		// start-up to the floor.
		psql: filepath.Join(pgbin, "psql"),
	}
	steps := []struct {
		dir, tags, out, pkg string
	}{
		{root, "", b.schemahook, "./hook/cmd/schemahook"},
		{benchDir, "pgx5", b.migrate, migrateModule + "/cmd/migrate"},
		{benchDir, gooseTags, b.goose, gooseModule + "/cmd/goose"},
	}
	for _, s := range steps {
		args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", s.out}
		if s.tags != "" {
			args = append(args, "-tags", s.tags)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, s.pkg)...)
		cmd.Dir = s.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", s.pkg, err, out)
		}
	}
	if _, err := os.Stat(b.psql); err != nil {
		return b, fmt.Errorf("psql not found next to the server binaries: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", migrateModule, gooseModule)
	cmd.Dir = benchDir
	outb, err := cmd.Output()
	if err != nil {
		return b, fmt.Errorf("go list -m: %w", err)
	}
	if v := strings.Fields(string(outb)); len(v) == 2 {
		b.migrateVersion, b.gooseVersion = v[0], v[1]
	}
	return b, nil
}

// Tool names, also the column order of the report.
const (
	toolSchemahook = "schemahook"
	toolMigrate    = "golang-migrate"
	toolGoose      = "goose"
	toolPsql       = "psql"
	// toolPsqlTx is a reference, not a peer: psql running each file in its own transaction
	// with a version row, the least any tool with that guarantee can make the server do.
	toolPsqlTx = "psql-per-transaction"
	// toolUpgrade is schemahook too, on a database already at the first migration: an upgrade
	// with --commit migration, where every migration commits on its own (by default an upgrade's
	// pending migrations commit together, as on an empty database).
	toolUpgrade = "schemahook-upgrade"
)

// invocation is how a tool is run against a database with a migrations set.
func (e *env) invocation(tool, db string, set *migrationSet, extra ...string) (args, environ []string) {
	switch tool {
	case toolSchemahook, toolUpgrade:
		// Configured like the chart does it: URL without password, PGPASSWORD from a Secret,
		// JSON logs because stderr is not a terminal.
		if tool == toolUpgrade {
			extra = append([]string{"--commit", "migration"}, extra...)
		}
		return append([]string{e.bin.schemahook, "update", "--migrations", set.dir}, extra...),
			[]string{"DATABASE_URL=" + e.pg.urlNoPassword(db), "PGPASSWORD=" + e.pg.password, "SCHEMAHOOK_LOG_FORMAT=json"}
	case toolMigrate:
		return []string{e.bin.migrate, "-path", set.dir, "-database", "pgx5" + strings.TrimPrefix(e.pg.url(db), "postgres"), "up"}, nil
	case toolGoose:
		return []string{e.bin.goose, "-dir", set.gooseDir, "postgres", e.pg.url(db), "up"}, nil
	case toolPsql:
		return []string{e.bin.psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", set.concatenated}, e.pg.libpqEnv(db)
	case toolPsqlTx:
		return []string{e.bin.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", set.perTransaction}, e.pg.libpqEnv(db)
	}
	panic("unknown tool " + tool)
}

// proc is one finished process.
type proc struct {
	wall           time.Duration // fork to exit, as a hook Job's container sees it
	maxRSS         int64         // bytes, from wait4's rusage: what /usr/bin/time reports
	user, sys      time.Duration
	stdout, stderr string
}

// runTool runs a tool once and fails on a non-zero exit.
func (e *env) runTool(ctx context.Context, tool, db string, set *migrationSet, extra ...string) (proc, error) {
	args, environ := e.invocation(tool, db, set, extra...)
	return runProc(ctx, 5*time.Minute, environ, args...)
}

// runProc runs args with a clean environment plus environ. The caller's PG*, DATABASE_URL and
// SCHEMAHOOK_* variables are left out: they would point the tools somewhere else.
func runProc(ctx context.Context, timeout time.Duration, environ []string, args ...string) (proc, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "SCHEMAHOOK_") || strings.HasPrefix(k, "GOOSE_") || k == "DATABASE_URL" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, environ...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	p := proc{wall: time.Since(start), stdout: stdout.String(), stderr: stderr.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
			p.user = time.Duration(ru.Utime.Nano())
			p.sys = time.Duration(ru.Stime.Nano())
		}
	}
	if err != nil {
		return p, fmt.Errorf("%s: %w\n%s%s", filepath.Base(args[0]), err, tail(p.stdout), tail(p.stderr))
	}
	return p, nil
}

// tail keeps the end of a tool's output for an error message.
func tail(s string) string {
	const max = 2000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}
