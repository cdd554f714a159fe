// Package pgtest gives each test its own fresh PostgreSQL database on a real server.
//
// The server comes from, in order:
//  1. SCHEMAHOOK_TEST_DATABASE_URL — a URL of a role allowed to CREATE DATABASE;
//  2. testcontainers-go's Postgres module, when a Docker engine answers;
//  3. PostgreSQL server binaries on this machine (/usr/lib/postgresql/*/bin, or PGBIN), started
//     in a temp dir for this test process — as the postgres user when running as root, since
//     PostgreSQL refuses to run as root.
//
// When none is available a test that needs one fails, saying what it needs: a suite must never
// pass without its database. SCHEMAHOOK_TEST_SKIP_DB=1 is the explicit opt-out (a machine
// without PostgreSQL, a quick run of the other tests): those tests are then skipped.
//
// Each test binary that uses pgtest's TestMain (Main, Run) writes one line saying which server
// it used, to stderr (shown by go test -v, or when the package fails) and, when
// SCHEMAHOOK_TEST_BACKEND_LOG names a file, appended to it (the Makefile prints that file).
// Everything a local server wrote is removed when the binary ends.
package pgtest

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
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// Server is a PostgreSQL server on which tests create databases.
type Server struct {
	AdminURL string // superuser (or CREATEDB) URL, database "postgres"
	Source   string // which provider supplied it, for messages

	local   *Local // set when the server runs from local binaries (it can be stopped/restarted)
	stop    func() error
	version string // server_version, for the backend line
}

// SkipEnv is the opt-out: set to 1, tests that need PostgreSQL are skipped when none can be had.
const SkipEnv = "SCHEMAHOOK_TEST_SKIP_DB"

// BackendLogEnv names a file to which each test binary appends its backend line.
const BackendLogEnv = "SCHEMAHOOK_TEST_BACKEND_LOG"

// Unavailable fails t with msg, or skips it when SCHEMAHOOK_TEST_SKIP_DB=1: for tests that need
// PostgreSQL (or its server binaries) and cannot have it.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skip(msg + " (skipped: " + SkipEnv + "=1)")
	}
	t.Fatal(msg + " — or set " + SkipEnv + "=1 to skip the tests that need it")
}

var (
	once      sync.Once
	shared    *Server
	sharedErr error
)

// Shared returns the process-wide server, starting it on first use.
func Shared() (*Server, error) {
	once.Do(func() { shared, sharedErr = start() })
	return shared, sharedErr
}

// Main runs the tests of a package and then stops a server this process started. Call it
// from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests, stops a server this process started and removes its files, says which
// server the tests used, and returns the exit code — for a TestMain that has its own cleanup to
// do before exiting.
func Run(m *testing.M) int {
	code := m.Run()
	if shared != nil && shared.stop != nil {
		if err := shared.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the server: %v\n", err)
			if code == 0 {
				code = 1 // a server left running, or its files left behind, is a failure too
			}
		}
	}
	reportBackend()
	return code
}

// reportBackend writes the binary's backend line.
func reportBackend() {
	line := "pgtest: " + strings.TrimSuffix(filepath.Base(os.Args[0]), ".test") + ": "
	switch {
	case shared != nil:
		line += fmt.Sprintf("PostgreSQL %s from %s", shared.version, shared.Source)
	case sharedErr != nil:
		line += "no PostgreSQL: " + strings.ReplaceAll(sharedErr.Error(), "\n", " ")
	default:
		line += "no test needed PostgreSQL"
	}
	fmt.Fprintln(os.Stderr, line)
	if f := os.Getenv(BackendLogEnv); f != "" {
		if w, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintln(w, line)
			_ = w.Close()
		}
	}
}

// Need fails the test when no server can be had (skips it with SCHEMAHOOK_TEST_SKIP_DB=1), and
// returns the server.
func Need(t testing.TB) *Server {
	t.Helper()
	s, err := Shared()
	if err != nil {
		Unavailable(t, fmt.Sprintf("needs PostgreSQL: set SCHEMAHOOK_TEST_DATABASE_URL, run a Docker engine, or install PostgreSQL server binaries (apt-get install postgresql): %v", err))
	}
	return s
}

// DB is one fresh database.
type DB struct {
	URL    string // connection URL with password, for the code under test
	Name   string
	Server *Server
}

// New creates a fresh, empty database for t and drops it when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	s := Need(t)
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("creating test database %s on %s: %v", name, s.Source, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	return &DB{URL: withDatabase(s.AdminURL, name), Name: name, Server: s}
}

// Conn opens a connection to the database for assertions; closed when t ends.
func (d *DB) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", d.Name, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Local returns the locally started server, or nil when the server came from elsewhere
// (tests that stop and restart the server need it and skip otherwise).
func (s *Server) Local() *Local { return s.local }

func (s *Server) exec(ctx context.Context, sql string) error {
	c, err := pgx.Connect(ctx, s.AdminURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

var unsafe = regexp.MustCompile(`[^a-z0-9]+`)

func dbName(test string) string {
	n := strings.Trim(unsafe.ReplaceAllString(strings.ToLower(test), "_"), "_")
	if len(n) > 40 {
		n = n[:40]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "t_" + n + "_" + hex.EncodeToString(b[:])
}

func withDatabase(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		return admin
	}
	u.Path = "/" + name
	return u.String()
}

func start() (*Server, error) {
	s, err := provide()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.AdminURL)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s does not answer: %w", s.Source, err), s.stopIfStarted())
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(ctx, "SHOW server_version").Scan(&s.version); err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", s.Source, err), s.stopIfStarted())
	}
	return s, nil
}

func (s *Server) stopIfStarted() error {
	if s.stop == nil {
		return nil
	}
	return s.stop()
}

// provide finds or starts a server, in the order the package comment gives.
func provide() (*Server, error) {
	if u := os.Getenv("SCHEMAHOOK_TEST_DATABASE_URL"); u != "" {
		return &Server{AdminURL: u, Source: "SCHEMAHOOK_TEST_DATABASE_URL"}, nil
	}
	var errs []error
	if s, err := startContainer(); err == nil {
		return s, nil
	} else {
		errs = append(errs, fmt.Errorf("testcontainers: %w", err))
	}
	l, err := StartLocal()
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("local binaries: %w", err))...)
	}
	// Destroy, not Stop: the data directory (about 50 MB) goes with the server.
	return &Server{AdminURL: l.AdminURL(), Source: "local server binaries in " + l.bin, local: l, stop: l.Destroy}, nil
}

func startContainer() (s *Server, err error) {
	defer func() {
		if r := recover(); r != nil { // testcontainers panics when no Docker host can be found
			s, err = nil, fmt.Errorf("no Docker engine: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return nil, err
	}
	if err := p.Health(ctx); err != nil {
		return nil, fmt.Errorf("no Docker engine answers: %w", err)
	}
	c, err := tcpostgres.Run(ctx, "postgres:15-alpine", tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("pgtest-password"), tcpostgres.WithDatabase("postgres"), tcpostgres.BasicWaitStrategies())
	if err != nil {
		return nil, err
	}
	u, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return nil, errors.Join(err, testcontainers.TerminateContainer(c))
	}
	return &Server{AdminURL: u, Source: "testcontainers", stop: func() error { return testcontainers.TerminateContainer(c) }}, nil
}

// Local is a PostgreSQL server run from local binaries in a temp dir, listening on
// 127.0.0.1 with password (SCRAM) authentication, like a production server.
type Local struct {
	Dir      string
	Port     int
	Password string
	bin      string
}

// StartLocal initializes and starts a new local server. The caller removes it with Destroy;
// when StartLocal fails, nothing of it is left.
func StartLocal() (l *Local, err error) {
	bin, err := serverBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "schemahook-pgtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if l != nil && l.Port != 0 {
				_ = l.Stop()
			}
			err = errors.Join(err, os.RemoveAll(dir))
			l = nil
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	l = &Local{Dir: dir, Password: hex.EncodeToString(pw[:]), bin: bin}
	if err := os.WriteFile(filepath.Join(dir, "pwfile"), []byte(l.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := l.chown(dir, filepath.Join(dir, "pwfile")); err != nil {
		return nil, err
	}
	if out, err := l.run("initdb", "-D", l.data(), "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+filepath.Join(dir, "pwfile"), "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if l.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := l.Start(); err != nil {
		return nil, err
	}
	return l, nil
}

// AdminURL is the superuser URL.
func (l *Local) AdminURL() string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", l.Password, l.Port)
}

func (l *Local) data() string { return filepath.Join(l.Dir, "data") }

// Start starts (or restarts after Stop) the server and waits until it accepts connections.
func (l *Local) Start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories='%s' -c fsync=off -c full_page_writes=off -c max_connections=200", l.Port, l.Dir)
	if out, err := l.run("pg_ctl", "-D", l.data(), "-l", filepath.Join(l.Dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// Stop stops the server (immediate mode: like a crash, connections are cut). The data stays.
func (l *Local) Stop() error {
	if out, err := l.run("pg_ctl", "-D", l.data(), "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Destroy stops the server unless a test already did, and removes its directory.
func (l *Local) Destroy() error {
	var err error
	if _, statErr := os.Stat(filepath.Join(l.data(), "postmaster.pid")); statErr == nil {
		err = l.Stop()
	}
	return errors.Join(err, os.RemoveAll(l.Dir))
}

func (l *Local) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(l.bin, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	return cmd.CombinedOutput()
}

func (l *Local) chown(paths ...string) error {
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

func serverBin() (string, error) {
	if b := os.Getenv("PGBIN"); b != "" {
		return b, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no initdb found in /usr/lib/postgresql/*/bin or PATH")
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) < version(matches[j]) })
	return filepath.Dir(matches[len(matches)-1]), nil
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
