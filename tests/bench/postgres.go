package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// server is the one throwaway PostgreSQL every tool talks to: 127.0.0.1 only, SCRAM password
// authentication, so that every peer pays the same connection cost a hook Job pays in a cluster.
type server struct {
	dir, bin string
	port     int
	password string
	version  string // server_version
	stmts    bool   // pg_stat_statements is loaded
	admin    *pgx.Conn
}

// startServer initializes a cluster in a temp dir and starts it. PostgreSQL refuses to run as
// root, so as root the server binaries run as the postgres user, who owns the directory.
func startServer(ctx context.Context, fsync bool) (*server, error) {
	bin, err := serverBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "schemahook-bench-pg-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, bin: bin}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	s.password = hex.EncodeToString(pw[:])
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if err := errors.Join(os.Chmod(dir, 0o755), chownPostgres(dir, pwfile)); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if out, err := s.run(ctx, "initdb", "-D", s.data(), "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pwfile, "--no-sync", "-E", "UTF8"); err != nil {
		return nil, errors.Join(fmt.Errorf("initdb: %w: %s", err, out), os.RemoveAll(dir))
	}
	if s.port, err = freePort(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	opts := []string{
		"listen_addresses=127.0.0.1", "port=" + strconv.Itoa(s.port), "unix_socket_directories='" + dir + "'",
		"max_connections=200",
		// A background vacuum of the catalogs in the middle of a run would add noise that
		// belongs to no tool.
		"autovacuum=off",
	}
	if !fsync {
		// How long a commit's disk flush takes depends on the disk, not on the tool; without
		// it the figures compare what the tools do. -fsync measures with flushes.
		opts = append(opts, "fsync=off", "full_page_writes=off")
	}
	if _, err := os.Stat(filepath.Join(pkgLibDir(ctx, bin), "pg_stat_statements.so")); err == nil {
		// Counts the statements each tool sends, and times them for the profile.
		opts = append(opts, "shared_preload_libraries=pg_stat_statements", "pg_stat_statements.max=10000", "pg_stat_statements.track_utility=on")
		s.stmts = true
	}
	var o strings.Builder
	for _, kv := range opts {
		o.WriteString(" -c " + kv)
	}
	if out, err := s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", o.String(), "start"); err != nil {
		return nil, errors.Join(fmt.Errorf("pg_ctl start: %w: %s", err, out), os.RemoveAll(dir))
	}
	s.admin, err = pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return nil, errors.Join(err, s.stop())
	}
	s.version = s.admin.PgConn().ParameterStatus("server_version")
	if s.stmts {
		if _, err := s.admin.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			return nil, errors.Join(err, s.stop())
		}
	}
	return s, nil
}

// stop shuts the server down (immediate: nothing in it is worth a checkpoint) and removes it.
func (s *server) stop() error {
	if s.admin != nil {
		_ = s.admin.Close(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.run(ctx, "pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *server) data() string { return filepath.Join(s.dir, "data") }

// url is a superuser URL for db with the password in it (golang-migrate and goose take one).
func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", url.QueryEscape(s.password), s.port, db)
}

// urlNoPassword is how schemahook is configured in a chart: the password comes from PGPASSWORD.
func (s *server) urlNoPassword(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// libpqEnv configures psql.
func (s *server) libpqEnv(db string) []string {
	return []string{"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(s.port), "PGUSER=postgres", "PGPASSWORD=" + s.password,
		"PGDATABASE=" + db, "PGSSLMODE=disable"}
}

// createDB creates an empty database, dropping a leftover of the same name.
func (s *server) createDB(ctx context.Context, name string) error {
	if err := s.dropDB(ctx, name); err != nil {
		return err
	}
	_, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func (s *server) dropDB(ctx context.Context, name string) error {
	_, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// dbStats is what the server saw of one tool's run on its own database.
type dbStats struct {
	statements int64         // pg_stat_statements calls (each statement of a multi-statement query counts)
	commits    int64         // pg_stat_database.xact_commit
	cpu        time.Duration // CPU of the backends that served the run
}

// cpuTime is the CPU time of the postmaster and its exited children (the backends of
// finished connections), from /proc: the server's side of a run, unaffected by how long it
// waited for a CPU. Live processes (the admin connection, the WAL writer) are not in it.
func (s *server) cpuTime() time.Duration {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _, _ := strings.Cut(string(b), "\n")
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesized command: utime, stime, cutime, cstime are 14-17 of stat(5).
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

// resetStatements clears pg_stat_statements before a run.
func (s *server) resetStatements(ctx context.Context) error {
	if !s.stmts {
		return nil
	}
	_, err := s.admin.Exec(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// stats reads a database's counters once the tool's backends are gone: a backend flushes its
// transaction counters when it exits, which happens a moment after the client process has.
func (s *server) stats(ctx context.Context, db string) (dbStats, error) {
	var st dbStats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var n int
		if err := s.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n); err != nil {
			return st, err
		}
		if n == 0 {
			break
		}
	}
	time.Sleep(50 * time.Millisecond) // the postmaster reaps the backend: its CPU moves into cutime
	if _, err := s.admin.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return st, err
	}
	if err := s.admin.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", db).Scan(&st.commits); err != nil {
		return st, err
	}
	if s.stmts {
		err := s.admin.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
			WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)`, db).Scan(&st.statements)
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func (s *server) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	return cmd.CombinedOutput()
}

func chownPostgres(paths ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres user to run the server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// serverBin finds the newest PostgreSQL server binaries: PGBIN, /usr/lib/postgresql/*/bin
// (Debian), else initdb on PATH.
func serverBin() (string, error) {
	if b := os.Getenv("PGBIN"); b != "" {
		return b, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin or on PATH (Debian: apt-get install postgresql), or set PGBIN")
	}
	major := func(p string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p)))); return n }
	sort.Slice(matches, func(i, j int) bool { return major(matches[i]) < major(matches[j]) })
	return filepath.Dir(matches[len(matches)-1]), nil
}

func pkgLibDir(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_config"), "--pkglibdir").Output()
	if err != nil {
		return filepath.Join(filepath.Dir(bin), "lib")
	}
	return strings.TrimSpace(string(out))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
