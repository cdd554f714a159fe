// Package reliability proves that schemahook loses nothing under SIGKILL, concurrent hooks,
// database outages, lock queues and bad input, and never prints the database password. Every
// test runs the real schemahook binary against a real PostgreSQL server (see tests/pgtest).
package reliability

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// Exit codes documented in the README.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitFailed  = 3
	exitDrift   = 4
	exitNewer   = 5
	exitDirty   = 6
	exitTimeout = 7
)

func TestMain(m *testing.M) { clitest.Main(m) }

// secrets are the passwords of every server and role the suite created. Every CLI run's output
// is checked against all of them (not only its own), so a password leaking through any path —
// logs, errors, JSON — fails the run that printed it.
var secrets struct {
	sync.Mutex
	list []string
}

func addSecret(t testing.TB, password string) {
	t.Helper()
	if len(password) < 12 {
		t.Fatalf("password %q is too short to be searched for in output reliably", password)
	}
	secrets.Lock()
	defer secrets.Unlock()
	if !slices.Contains(secrets.list, password) {
		secrets.list = append(secrets.list, password)
	}
}

// assertNoSecret fails t when text contains any password the suite knows.
func assertNoSecret(t testing.TB, what, text string) {
	t.Helper()
	secrets.Lock()
	defer secrets.Unlock()
	for _, s := range secrets.list {
		if strings.Contains(text, s) {
			t.Errorf("%s contains a database password:\n%s", what, text)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// DB is a fresh database owned by a dedicated login role with a long random password. The
// binary connects as that role, as an application's hook would (not as a superuser), and the
// password is one nothing else prints, so finding it in output is always a leak.
type DB struct {
	*pgtest.DB
	URL      string // the role's URL, password included: what the binary gets in its environment
	Role     string
	Password string
	AdminURL string // superuser URL of the same database, for setup and assertions
}

func newDB(t *testing.T) *DB {
	t.Helper()
	base := pgtest.New(t)
	d := &DB{DB: base, AdminURL: base.URL, Role: "sh_" + randomHex(6), Password: "pw-" + randomHex(16)}
	admin := connect(t, d.AdminURL)
	ctx := context.Background()
	_, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'; ALTER DATABASE %s OWNER TO %s",
		d.Role, d.Password, pgx.Identifier{base.Name}.Sanitize(), d.Role))
	if err != nil {
		t.Fatalf("creating the hook's role (the test server's admin needs CREATEROLE): %v", err)
	}
	t.Cleanup(func() {
		// Runs before pgtest drops the database: give everything back, then drop the role.
		c, err := pgx.Connect(context.Background(), d.AdminURL)
		if err != nil {
			t.Errorf("dropping role %s: %v", d.Role, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), fmt.Sprintf("REASSIGN OWNED BY %[1]s TO CURRENT_USER; DROP OWNED BY %[1]s; DROP ROLE %[1]s", d.Role)); err != nil {
			t.Errorf("dropping role %s: %v", d.Role, err)
		}
	})
	u, err := url.Parse(base.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(d.Role, d.Password)
	d.URL = u.String()
	addSecret(t, d.Password)
	if au, err := url.Parse(d.AdminURL); err == nil {
		if p, ok := au.User.Password(); ok && len(p) >= 12 {
			addSecret(t, p) // the server's own password must not leak either
		}
	}
	return d
}

// connect opens a connection for setup and assertions; closed when t ends.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting for assertions: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func writeDir(t testing.TB, files map[string]string) string { return clitest.WriteDir(t, files) }

// proc is one running schemahook process.
type proc struct {
	t              testing.TB
	args           []string
	cmd            *exec.Cmd
	stdout, stderr *clitest.Buffer
	done           chan struct{}
	res            result
	started        time.Time
}

// result of one CLI run.
type result struct {
	stdout, stderr string
	code           int // -1 when killed by a signal
	elapsed        time.Duration
}

// messages returns the text of the run's log: the "msg" of each JSON line (unescaped, so
// quotes and newlines in errors read as printed) and any non-JSON line as is.
func (r result) messages() string {
	var b strings.Builder
	for _, line := range strings.Split(r.stderr, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			if m, ok := rec["msg"].(string); ok {
				b.WriteString(m)
				b.WriteByte('\n')
				continue
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// start runs the binary with the database URL in the environment — never in args, where any
// user on the node could read it from /proc — plus env, JSON logs and the given args.
func start(t testing.TB, dbURL string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(clitest.Binary(), args...)
	cmd.Env = clitest.Env()
	if dbURL != "" {
		cmd.Env = append(cmd.Env, "SCHEMAHOOK_DATABASE_URL="+dbURL)
	}
	cmd.Env = append(cmd.Env, env...)
	p := &proc{t: t, args: args, cmd: cmd, stdout: &clitest.Buffer{}, stderr: &clitest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting schemahook %v: %v", args, err)
	}
	p.started = time.Now()
	go func() {
		err := cmd.Wait()
		p.res = result{stdout: p.stdout.String(), stderr: p.stderr.String(), elapsed: time.Since(p.started)}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.res.code = ee.ExitCode()
		case err != nil:
			p.res.code = -2
			p.res.stderr += "\n(wait: " + err.Error() + ")"
		}
		close(p.done)
	}()
	return p
}

// assertArgsClean checks the running process's command line as the kernel shows it to every
// user: no password.
func (p *proc) assertArgsClean() {
	p.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	if err != nil {
		return // already exited (or no procfs): nothing running to inspect
	}
	assertNoSecret(p.t, fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid), strings.ReplaceAll(string(b), "\x00", " "))
}

// wait returns the result, failing t when the process runs longer than limit (then it is
// killed: a hung hook is a failure, not something to wait out).
func (p *proc) wait(limit time.Duration) result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("schemahook %s did not finish within %s; killed. stderr:\n%s", strings.Join(p.args, " "), limit, p.res.stderr)
	}
	assertNoSecret(p.t, "schemahook "+strings.Join(p.args, " ")+" output", p.res.stdout+p.res.stderr)
	return p.res
}

// kill sends SIGKILL and reports whether the process was still running (false: it had exited).
func (p *proc) kill() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	err := p.cmd.Process.Kill()
	<-p.done
	assertNoSecret(p.t, "killed schemahook output", p.res.stdout+p.res.stderr)
	return err == nil && p.res.code == -1
}

// waitLog polls the process's stderr until it contains want or the process ends.
func (p *proc) waitLog(want string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stderr.String(), want) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.stderr.String(), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// run starts the binary and waits for it (2 minutes at most), logging the output.
func run(t testing.TB, dbURL string, env []string, args ...string) result {
	t.Helper()
	r := start(t, dbURL, env, args...).wait(2 * time.Minute)
	t.Logf("schemahook %s → exit %d in %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

func migrationsEnv(dir string) []string { return []string{"SCHEMAHOOK_MIGRATIONS=" + dir} }

func versionRow(t testing.TB, c *pgx.Conn) (int, bool) { return pgtest.VersionRow(t, c) }
func historyVersions(t testing.TB, c *pgx.Conn) []int  { return pgtest.HistoryVersions(t, c) }

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
