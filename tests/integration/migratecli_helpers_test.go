package integration

// Helpers for running golang-migrate's real CLI (migrateBin, built by TestMain from the version
// tests/go.mod pins) next to schemahook on one database.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// tables names where the two tools keep their state: golang-migrate's version table (the CLI's
// x-migrations-table, schemahook's --migrations-table) and schemahook's history.
type tables struct {
	name              string // for subtest names
	versions, history string
}

var tableVariants = []tables{
	{"default tables", "schema_migrations", "schemahook_history"},
	{"x-migrations-table", "app_versions", "app_history"},
	// Names that need quoting, and a history table whose trigger's name would be too long for an
	// identifier (63 bytes) with its suffix.
	{"quoted names", `Versions "v2"`, `History.of "v2", with a name 60 bytes long, nearly the max`},
}

// pair is one database on which both tools run, with one table variant.
type pair struct {
	t  *testing.T
	db *pgtest.DB
	tb tables
	c  *pgx.Conn // for assertions, as the admin role
}

func newPair(t *testing.T, tb tables) *pair {
	t.Helper()
	db := pgtest.New(t)
	return &pair{t: t, db: db, tb: tb, c: db.Conn(t)}
}

// migrateURL is the URL the migrate CLI opens: pgx5:// (its pgx v5 driver), and
// x-migrations-table unless the version table is golang-migrate's default. The URL's path is
// "/<database>", which golang-migrate hashes, with its slash, into its lock key.
func (p *pair) migrateURL(user *url.Userinfo) string {
	u, err := url.Parse(p.db.URL)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Scheme = "pgx5"
	if user != nil {
		u.User = user
	}
	q := u.Query()
	if p.tb.versions != "schema_migrations" {
		q.Set("x-migrations-table", p.tb.versions)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// env is what schemahook needs to run on the pair's database with dir's migrations.
func (p *pair) env(dir string) []string {
	return []string{"SCHEMAHOOK_DATABASE_URL=" + p.db.URL, "SCHEMAHOOK_MIGRATIONS=" + dir,
		"SCHEMAHOOK_MIGRATIONS_TABLE=" + p.tb.versions, "SCHEMAHOOK_HISTORY_TABLE=" + p.tb.history}
}

// schemahook runs the schemahook binary on dir's migrations and waits.
func (p *pair) schemahook(dir string, args ...string) result {
	p.t.Helper()
	return clitest.Run(p.t, p.env(dir), args...)
}

// migrate runs the migrate CLI on dir's migrations (as user when not nil) and waits.
func (p *pair) migrate(dir string, user *url.Userinfo, args ...string) result {
	p.t.Helper()
	r := p.startMigrate(dir, user, args...).wait(p.t, 2*time.Minute)
	return r.Result
}

// running is a process started in the background.
type running struct {
	name     string
	cmd      *exec.Cmd
	out, err clitest.Buffer
	started  time.Time
	done     chan struct{}
	res      finished
}

type finished struct {
	clitest.Result
	elapsed time.Duration
}

func (p *pair) startMigrate(dir string, user *url.Userinfo, args ...string) *running {
	p.t.Helper()
	full := append([]string{"-path", dir, "-database", p.migrateURL(user)}, args...)
	return start(p.t, "migrate "+strings.Join(args, " "), exec.Command(migrateBin, full...), nil)
}

func (p *pair) startSchemahook(dir string, args ...string) *running {
	p.t.Helper()
	return start(p.t, "schemahook "+strings.Join(args, " "), exec.Command(clitest.Binary(), args...), append(clitest.Env(), p.env(dir)...))
}

func start(t *testing.T, name string, cmd *exec.Cmd, env []string) *running {
	t.Helper()
	r := &running{name: name, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &r.out, &r.err
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		err := cmd.Wait()
		r.res.elapsed = time.Since(r.started)
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			r.res.Code = ee.ExitCode()
		case err != nil:
			r.res.Code = -1
		}
		r.res.Stdout, r.res.Stderr = r.out.String(), r.err.String()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for the process to exit (killing it after timeout, which fails the test).
func (r *running) wait(t *testing.T, timeout time.Duration) finished {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Errorf("%s did not exit within %s: killed", r.name, timeout)
	}
	t.Logf("%s → exit %d after %s\nstdout: %s\nstderr: %s", r.name, r.res.Code, r.res.elapsed.Round(time.Millisecond), r.res.Stdout, r.res.Stderr)
	return r.res
}

func (r *running) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// eventually polls cond every 20ms until it holds, failing the test after timeout.
func (p *pair) eventually(what string, timeout time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// within polls cond every 20ms for up to 20s, and fails the test (going on) when it never holds.
func (p *pair) within(what string, cond func() bool) bool {
	p.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Errorf("%s: not within 20s", what)
			return false
		}
	}
	return true
}

// gate is an advisory lock the test holds: a migration that takes it (sql) waits there until
// the test opens it — a slow migration that ends when the test has seen what it needs to.
type gate struct {
	p   *pair
	key int64
}

// gateKey is outside the keys golang-migrate derives (32-bit values).
const gateKey = 1<<40 + 42

// closedGate takes the gate's lock on the test's connection.
func (p *pair) closedGate() *gate {
	p.t.Helper()
	if _, err := p.c.Exec(context.Background(), "SELECT pg_advisory_lock($1)", int64(gateKey)); err != nil {
		p.t.Fatal(err)
	}
	return &gate{p: p, key: gateKey}
}

// sql waits at the gate, then lets the next one through.
func (g *gate) sql() string {
	return fmt.Sprintf("SELECT pg_advisory_lock(%d);\nSELECT pg_advisory_unlock(%d);\n", g.key, g.key)
}

// waiting reports whether a session waits at the gate.
func (g *gate) waiting() bool {
	g.p.t.Helper()
	var n int
	err := g.p.c.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, g.key).Scan(&n)
	if err != nil {
		g.p.t.Fatal(err)
	}
	return n > 0
}

// open releases the gate.
func (g *gate) open() {
	g.p.t.Helper()
	if _, err := g.p.c.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", g.key); err != nil {
		g.p.t.Fatal(err)
	}
}

// advisoryWaiters counts the sessions of the database waiting for an advisory lock.
func (p *pair) advisoryWaiters() int {
	p.t.Helper()
	var n int
	err := p.c.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
	if err != nil {
		p.t.Fatal(err)
	}
	return n
}

// versionRow reads the version table: (version, dirty), or (-1, false) when it or its row is
// missing.
func (p *pair) versionRow() (int, bool) {
	p.t.Helper()
	if !tableExists(p.t, p.c, pgx.Identifier{p.tb.versions}.Sanitize()) {
		return -1, false
	}
	var v int64 = -1
	var dirty bool
	err := p.c.QueryRow(context.Background(), "SELECT version, dirty FROM "+pgx.Identifier{p.tb.versions}.Sanitize()).Scan(&v, &dirty)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		p.t.Fatal(err)
	}
	return int(v), dirty
}

// history lists the history table's versions (nil when it does not exist).
func (p *pair) history() []int {
	p.t.Helper()
	if !tableExists(p.t, p.c, pgx.Identifier{p.tb.history}.Sanitize()) {
		return nil
	}
	rows, _ := p.c.Query(context.Background(), "SELECT version::int FROM "+pgx.Identifier{p.tb.history}.Sanitize()+" ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		p.t.Fatal(err)
	}
	return vs
}

// lockedBy counts the advisory locks granted to sessions whose application_name is app (a
// schemahook running a step appends what it runs to it).
func (p *pair) lockedBy(app string) int {
	p.t.Helper()
	var n int
	err := p.c.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() AND split_part(a.application_name, ' ', 1) = $1`, app).Scan(&n)
	if err != nil {
		p.t.Fatal(err)
	}
	return n
}

// cliFiles are four migrations that each create a table.
func cliFiles() map[string]string {
	files := map[string]string{}
	for v, name := range []string{"a", "b", "c", "d"} {
		files[fmt.Sprintf("%06d_%s.up.sql", v+1, name)] = fmt.Sprintf("CREATE TABLE %s (id int);\n", name)
		files[fmt.Sprintf("%06d_%s.down.sql", v+1, name)] = fmt.Sprintf("DROP TABLE %s;\n", name)
	}
	return files
}

// release is one version of an application's migrations: the files of versions ≤ head, with
// changes.
func (p *pair) release(files map[string]string, head int, change map[string]string) string {
	p.t.Helper()
	f := upTo(files, head)
	maps.Copy(f, change)
	return writeDir(p.t, f)
}

// seen is what schemahook's read-only commands say about the database: `status -o json` and
// `check`.
type seen struct {
	status  statusJSON
	check   result
	applied []int // status's applied versions
	pending []int // status's pending versions
}

// look runs status and check and checks that they agree with each other and with themselves:
// no version both applied and pending, nothing applied above the current version or pending at
// or below it, and check's exit code the one status's state implies.
func (p *pair) look(dir string) seen {
	p.t.Helper()
	r := p.schemahook(dir, "status", "-o", "json")
	if r.Code != exitOK {
		p.t.Fatalf("status: exit %d\n%s", r.Code, r.Stderr)
	}
	s := seen{status: decodeStatus(p.t, r.Stdout), check: p.schemahook(dir, "check")}
	cur := -1
	if s.status.Current != nil {
		cur = *s.status.Current
	}
	for _, a := range s.status.Applied {
		s.applied = append(s.applied, a.Version)
		if a.Version > cur {
			p.t.Errorf("status lists version %d as applied, above the current version %d", a.Version, cur)
		}
	}
	for _, x := range s.status.Pending {
		s.pending = append(s.pending, x.Version)
		if x.Version <= cur || slices.Contains(s.applied, x.Version) {
			p.t.Errorf("status lists version %d as pending at version %d (applied: %v)", x.Version, cur, s.applied)
		}
	}
	wantCheck := map[string]int{"current": exitOK, "pending": exitNotCurrent, "empty": exitNotCurrent, "migrating": exitNotCurrent,
		"dirty": exitDirty, "newer": exitNewer}[s.status.State]
	if s.status.State == "drift" {
		wantCheck = exitNotCurrent
		if cur == s.status.Head {
			wantCheck = exitOK // at head, drift is a warning
		}
	}
	if s.check.Code != wantCheck {
		p.t.Errorf("status says %q (%s) but check exits %d, want %d", s.status.State, s.status.Message, s.check.Code, wantCheck)
	}
	if (s.status.State == "dirty") != s.status.Dirty || (s.status.State == "dirty") != strings.Contains(s.status.Message, "force") {
		p.t.Errorf("status: state %q, dirty %t, message %q: only a dirty state is dirty and advises force", s.status.State, s.status.Dirty, s.status.Message)
	}
	return s
}

// expect checks what look saw: the state, the current version (-1: none), the applied and
// pending versions.
func (p *pair) expect(s seen, state string, current int, applied, pending []int) {
	p.t.Helper()
	cur := -1
	if s.status.Current != nil {
		cur = *s.status.Current
	}
	if s.status.State != state || cur != current || !slices.Equal(s.applied, applied) || !slices.Equal(s.pending, pending) {
		p.t.Errorf("status: state %q at %d, applied %v, pending %v (%s); want %q at %d, applied %v, pending %v",
			s.status.State, cur, s.applied, s.pending, s.status.Message, state, current, applied, pending)
	}
}

// code checks a run's exit code and that its output says each of says.
func (p *pair) code(what string, r result, code int, says ...string) {
	p.t.Helper()
	if r.Code != code {
		p.t.Errorf("%s: exit %d, want %d\n%s%s", what, r.Code, code, r.Stdout, r.Stderr)
		return
	}
	for _, s := range says {
		if !strings.Contains(r.Stdout+r.Stderr, s) {
			p.t.Errorf("%s: output lacks %q:\n%s%s", what, s, r.Stdout, r.Stderr)
		}
	}
}

// at checks the version row.
func (p *pair) at(version int, dirty bool) {
	p.t.Helper()
	if v, d := p.versionRow(); v != version || d != dirty {
		p.t.Errorf("%s = (%d, %t), want (%d, %t)", p.tb.versions, v, d, version, dirty)
	}
}

// historyIs checks the history table's versions.
func (p *pair) historyIs(want ...int) {
	p.t.Helper()
	if got := p.history(); !slices.Equal(got, want) {
		p.t.Errorf("%s = %v, want %v", p.tb.history, got, want)
	}
}

// noDirtyAdvice fails when output calls the database dirty or advises force.
var binaryVersion = regexp.MustCompile(`\(schemahook [^)]*\)`)

func noDirtyAdvice(t *testing.T, what string, r result) {
	t.Helper()
	// The history's applied_by names the binary's version, which a build from a work tree with
	// uncommitted changes ends in "-dirty": that is not what the check is about.
	out := binaryVersion.ReplaceAllString(strings.ToLower(r.Stdout+r.Stderr), "")
	if strings.Contains(out, "dirty") || strings.Contains(out, "force") {
		t.Errorf("%s calls a migration in progress dirty or advises force:\n%s%s", what, r.Stdout, r.Stderr)
	}
}
