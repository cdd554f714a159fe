package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// Exit codes as documented in the README and `schemahook --help`.
const (
	exitOK, exitError, exitUsage, exitFailed, exitDrift, exitNewer, exitDirty, exitTimeout, exitNotCurrent = 0, 1, 2, 3, 4, 5, 6, 7, 8
)

func TestCheckExitCodes(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	full := writeDir(t, files)
	old := writeDir(t, upTo(files, 3))
	withDir := func(dir string) []string { return []string{"SCHEMAHOOK_MIGRATIONS=" + dir} }

	expect := func(r result, code int, says string) {
		t.Helper()
		if r.Code != code || !strings.Contains(r.Stderr+r.Stdout, says) {
			t.Fatalf("exit %d, output %q; want exit %d saying %q", r.Code, r.Stderr+r.Stdout, code, says)
		}
	}
	expect(cli(t, db.URL, withDir(full), "check"), exitNotCurrent, "database has no schema yet, this release needs 5")
	expect(cli(t, db.URL, withDir(old), "update"), exitOK, "")
	expect(cli(t, db.URL, withDir(full), "check"), exitNotCurrent, "schema at 3, this release needs 5 (2 pending")
	expect(cli(t, db.URL, withDir(full), "update"), exitOK, "")
	expect(cli(t, db.URL, withDir(full), "check"), exitOK, "schema is current")
	expect(cli(t, db.URL, withDir(old), "check"), exitNewer, "at version 5 but this release only knows migrations up to 3")
	expect(cli(t, db.URL, withDir(old), "update"), exitNewer, "older release must not run against a newer schema")
	// The refusal names the chart value that makes a downgrade (an Argo CD sync of an older revision).
	expect(cli(t, db.URL, withDir(old), "update"), exitNewer, "config.allowDowngrade=true")
	// The gate of an older release: a newer schema never becomes current by waiting, so
	// check --wait refuses at once instead of polling for its whole --wait.
	start := time.Now()
	expect(cli(t, db.URL, withDir(old), "check", "--wait", "60s"), exitNewer, "at version 5 but this release only knows migrations up to 3")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("check --wait 60s on a newer database took %s, want an immediate exit 5", took.Round(time.Millisecond))
	}

	edited := exampleFiles(t)
	edited["000004_projects_slug.up.sql"] = strings.Replace(edited["000004_projects_slug.up.sql"], "slug", "slug ", 1)
	expect(cli(t, db.URL, withDir(writeDir(t, edited)), "update"), exitDrift, "000004_projects_slug.up.sql: file changed after it was applied")

	c := db.Conn(t)
	if _, err := c.Exec(context.Background(), "UPDATE schema_migrations SET dirty = true"); err != nil {
		t.Fatal(err)
	}
	expect(cli(t, db.URL, withDir(full), "check"), exitDirty, "dirty at version 5")
	expect(cli(t, db.URL, withDir(full), "update"), exitDirty, "schemahook force 5")
	expect(cli(t, db.URL, withDir(full), "force", "5"), exitOK, "")
	expect(cli(t, db.URL, withDir(full), "check"), exitOK, "")

	// Usage errors: nothing is touched.
	expect(cli(t, db.URL, nil, "check", "--wait", "-5s"), exitUsage, "must not be negative")
	expect(cli(t, db.URL, nil, "update", "--lock-timeout", "0s"), exitUsage, "must be positive")
	expect(cli(t, db.URL, nil, "status", "-o", "yaml"), exitUsage, "use table or json")
	expect(cli(t, db.URL, nil, "frobnicate"), exitUsage, "unknown command")
	expect(cli(t, db.URL, nil, "force"), exitUsage, "accepts 1 arg")
	expect(cli(t, db.URL, []string{"SCHEMAHOOK_LOCK_TIMEOUT=soon"}, "update"), exitUsage, "SCHEMAHOOK_LOCK_TIMEOUT")
	expect(cli(t, db.URL, withDir(t.TempDir()), "check"), exitUsage, "no migrations")
}

func TestFailingMigrationExitCode(t *testing.T) {
	db := pgtest.New(t)
	files := upTo(exampleFiles(t), 2)
	files["000003_broken.up.sql"] = "CREATE TABLE ok_so_far (id int);\nCREATE TABLE broken (id int REFERENCES nowhere (id));\n"
	files["000003_broken.down.sql"] = "DROP TABLE broken;"
	r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}, "update")
	if r.Code != exitFailed {
		t.Fatalf("exit %d, want %d", r.Code, exitFailed)
	}
	// Logs are JSON lines when stderr is not a terminal; the failure names file, line, SQLSTATE.
	// The database was empty: migrations 1–3 ran as one transaction, and none of them stays.
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if msg, _ := rec["msg"].(string); rec["level"] == "ERROR" {
			found = strings.Contains(msg, "000003_broken.up.sql failed at line 2") && strings.Contains(msg, "SQLSTATE 42P01") &&
				strings.Contains(msg, "nothing of migrations 1–3 was applied") && strings.Contains(msg, "still at no version (empty), clean") &&
				rec["exit_code"] == float64(exitFailed)
		}
	}
	if !found {
		t.Fatalf("no error log line naming the file, line and SQLSTATE in:\n%s", r.Stderr)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != -1 || dirty || tableExists(t, c, "ok_so_far") || tableExists(t, c, "accounts") {
		t.Fatalf("after failure: version (%d, %t), ok_so_far exists=%t, accounts exists=%t; want no version, neither table",
			v, dirty, tableExists(t, c, "ok_so_far"), tableExists(t, c, "accounts"))
	}
}

func TestCheckWaitReturnsOnceUpdated(t *testing.T) {
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, clitest.Binary(), "check", "--wait", "45s")
	cmd.Env = append(clitest.Env(), "SCHEMAHOOK_DATABASE_URL="+db.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("check --wait returned before the schema was updated: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Second):
	}
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatalf("update: exit %d", r.Code)
	}
	start := time.Now()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("check --wait after update: %v\n%s", err, stderr.String())
		}
		t.Logf("gate opened %v after the update finished", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatalf("check --wait still waiting 15s after the update\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "waiting for the schema") {
		t.Errorf("the gate did not log why it waited:\n%s", stderr.String())
	}

	// And with a deadline it gives up with the reason's exit code. The budget leaves room for a
	// slow first connection on a loaded machine: the point is the exit code, not the speed.
	other := pgtest.New(t)
	r := cli(t, other.URL, nil, "check", "--wait", "6s")
	if r.Code != exitNotCurrent || !strings.Contains(r.Stderr, "still not ready after") {
		t.Fatalf("check --wait on an empty database: exit %d, %s", r.Code, r.Stderr)
	}
}

// statusJSON is the documented shape of `status -o json`; decoding rejects unknown fields.
type statusJSON struct {
	Database    string  `json:"database"`
	State       string  `json:"state"`
	Message     string  `json:"message"`
	Current     *int    `json:"current"`
	Dirty       bool    `json:"dirty"`
	Head        int     `json:"head"`
	Initialized bool    `json:"initialized"`
	Pending     []ref   `json:"pending"`
	Applied     []apply `json:"applied"`
	Drift       []drift `json:"drift"`
}
type ref struct {
	Version       int    `json:"version"`
	Name          string `json:"name"`
	File          string `json:"file"`
	NoTransaction bool   `json:"no_transaction"`
}
type apply struct {
	Version      int       `json:"version"`
	Name         string    `json:"name"`
	Checksum     string    `json:"checksum"`
	Irreversible bool      `json:"irreversible"`
	AppliedAt    time.Time `json:"applied_at"`
	DurationMS   float64   `json:"duration_ms"`
	AppliedBy    string    `json:"applied_by"`
	Retries      int       `json:"retries"`
}
type drift struct {
	Version  int    `json:"version"`
	Name     string `json:"name"`
	Applied  string `json:"applied_checksum"`
	File     string `json:"file_checksum"`
	Problem  string `json:"problem"`
	FileName string `json:"file"`
}

func decodeStatus(t *testing.T, out string) statusJSON {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var s statusJSON
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("status -o json does not match the documented schema: %v\n%s", err, out)
	}
	// Lists are always arrays, never null, so consumers can iterate without checks.
	var raw map[string]any
	_ = json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"pending", "applied", "drift"} {
		if _, ok := raw[k].([]any); !ok {
			t.Errorf("%q is %T, want an array", k, raw[k])
		}
	}
	return s
}

func TestStatusJSON(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	full := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}

	s := decodeStatus(t, cli(t, db.URL, full, "status", "-o", "json").Stdout)
	if s.State != "empty" || s.Current != nil || s.Head != 5 || len(s.Pending) != 5 || len(s.Applied) != 0 || s.Initialized {
		t.Fatalf("empty database status = %+v", s)
	}
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, upTo(files, 3))}, "update"); r.Code != 0 {
		t.Fatal("update failed")
	}
	r := cli(t, db.URL, full, "status", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("status exit %d", r.Code)
	}
	s = decodeStatus(t, r.Stdout)
	var pending []int
	for _, p := range s.Pending {
		pending = append(pending, p.Version)
	}
	if s.State != "pending" || s.Current == nil || *s.Current != 3 || s.Dirty || !slices.Equal(pending, []int{4, 5}) || len(s.Drift) != 0 {
		t.Fatalf("status = %+v, want pending at 3 with [4 5] pending", s)
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for i, a := range s.Applied {
		if a.Version != i+1 || a.Name == "" || !hex64.MatchString(a.Checksum) || a.AppliedAt.IsZero() || a.DurationMS <= 0 || a.AppliedBy == "" {
			t.Errorf("applied[%d] = %+v", i, a)
		}
	}
	if !s.Pending[0].NoTransaction == (s.Pending[0].Version == 3) || s.Pending[0].File != "000004_projects_slug.up.sql" {
		t.Errorf("pending[0] = %+v", s.Pending[0])
	}
	// The table output says the same in words.
	table := cli(t, db.URL, full, "status").Stdout
	for _, want := range []string{"State:     pending", "Version:   3 (head 5)", "000005_account_settings.up.sql"} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}
}

func TestPlanChangesNothing(t *testing.T) {
	db := pgtest.New(t)
	r := cli(t, db.URL, nil, "plan")
	if r.Code != 0 || !strings.Contains(r.Stdout, "CREATE TABLE accounts") || !strings.Contains(r.Stdout, "CREATE UNIQUE INDEX CONCURRENTLY") ||
		!strings.Contains(r.Stdout, "SET LOCAL lock_timeout = '200ms'") {
		t.Fatalf("plan output:\n%s", r.Stdout)
	}
	if tableExists(t, db.Conn(t), "schema_migrations") {
		t.Fatal("plan created the version table")
	}
}

// The password never appears in output, whatever the command and whether it succeeds.
func TestPasswordNeverPrinted(t *testing.T) {
	db := pgtest.New(t)
	u, _ := url.Parse(db.URL)
	password, _ := u.User.Password()
	if len(password) < 8 {
		t.Skip("the test server has no password to leak")
	}
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "wrong-"+password)
	closed := freeAddr(t)
	unreachable := fmt.Sprintf("postgres://%s:%s@%s/x?connect_timeout=1", u.User.Username(), password, closed)
	runs := []result{
		cli(t, db.URL, nil, "update"),
		cli(t, db.URL, nil, "status", "-o", "json"),
		cli(t, db.URL, nil, "status"),
		cli(t, db.URL, nil, "check"),
		cli(t, db.URL, nil, "plan"),
		cli(t, wrong.String(), nil, "check"),
		cli(t, unreachable, nil, "update", "--wait-for-db", "1s"),
		cli(t, "postgres://user:"+password+"@[bad", nil, "check"),
		cli(t, "", []string{"PGHOST=127.0.0.1", "PGPORT=" + u.Port(), "PGUSER=postgres", "PGPASSWORD=wrong-" + password, "PGDATABASE=" + db.Name}, "update"),
	}
	for i, r := range runs {
		if strings.Contains(r.Stdout+r.Stderr, password) {
			t.Errorf("run %d leaked the password:\n%s%s", i, r.Stdout, r.Stderr)
		}
	}
	if runs[5].Code != exitError || !strings.Contains(runs[5].Stderr, "28P01") || !strings.Contains(runs[5].Stderr, "PGPASSWORD") {
		t.Errorf("wrong password: exit %d, %s", runs[5].Code, runs[5].Stderr)
	}
	if runs[6].Code != exitTimeout || !strings.Contains(runs[6].Stderr, "did not accept connections within") {
		t.Errorf("unreachable: exit %d, %s", runs[6].Code, runs[6].Stderr)
	}
	if runs[7].Code != exitUsage {
		t.Errorf("malformed URL: exit %d, %s", runs[7].Code, runs[7].Stderr)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Down files are read only when something will run or record them: a no-op update (every
// deploy, every sync) reads the up files alone. A bad down file still stops plan, the
// stopWorkloads pre-check and update before anything changes, as soon as a migration is pending.
func TestBadDownFileStopsOnlyWhatNeedsIt(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	withDir := func(files map[string]string) []string { return []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)} }
	if r := cli(t, db.URL, withDir(upTo(files, 3)), "update"); r.Code != exitOK {
		t.Fatalf("update to 3: exit %d\n%s", r.Code, r.Stderr)
	}
	const down = "000002_create_projects.down.sql"
	const says = down + ": line 1: unknown directive"
	broken := exampleFiles(t)
	if _, ok := broken[down]; !ok {
		t.Fatalf("no %s in the example migrations", down)
	}
	broken[down] = "-- schemahook:no-transactions\n" + broken[down]

	c := db.Conn(t)
	before := pgtest.Fingerprint(t, c)
	for _, cmd := range [][]string{{"plan"}, {"update"}} {
		r := cli(t, db.URL, withDir(broken), cmd...)
		if r.Code != exitUsage || !strings.Contains(r.Stderr+r.Stdout, says) {
			t.Fatalf("%v with 2 pending and a bad down file: exit %d, output %q; want exit %d saying %q", cmd, r.Code, r.Stderr+r.Stdout, exitUsage, says)
		}
	}
	if after := pgtest.Fingerprint(t, c); after != before {
		t.Fatalf("a refused update changed the database:\nbefore %s\nafter  %s", before, after)
	}

	if r := cli(t, db.URL, withDir(files), "update"); r.Code != exitOK {
		t.Fatalf("update to 5: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, cmd := range [][]string{{"update"}, {"check"}, {"status"}} {
		if r := cli(t, db.URL, withDir(broken), cmd...); r.Code != exitOK {
			t.Fatalf("%v on a current schema with a bad down file of an applied migration: exit %d, want 0\n%s", cmd, r.Code, r.Stderr)
		}
	}
}

// The catalog is read while the connection is set up (runner.NewLoading): broken migrations
// must still be reported at once with the usage exit code, not after waiting for a database
// that is down, and a database that is down with good migrations is still waited for.
func TestBrokenMigrationsReportedWithoutWaitingForTheDatabase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "postgres://nobody@" + ln.Addr().String() + "/nothing?sslmode=disable&connect_timeout=2"
	ln.Close() // nothing listens there now

	files := upTo(exampleFiles(t), 2)
	files["000003_oops.up.sql"] = "CREATE TABLE oops (id int);" // no down file, not irreversible
	broken := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files), "SCHEMAHOOK_WAIT_FOR_DB=30s"}
	for _, cmd := range []string{"update", "status", "plan"} {
		start := time.Now()
		r := cli(t, down, broken, cmd)
		if took := time.Since(start); r.Code != exitUsage || !strings.Contains(r.Stderr, "000003_oops.up.sql: missing 000003_oops.down.sql") || took > 10*time.Second {
			t.Fatalf("%s with broken migrations and no database: exit %d after %s, stderr %q; want exit %d about the missing down file, at once",
				cmd, r.Code, took.Round(time.Millisecond), r.Stderr, exitUsage)
		}
	}
	good := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, upTo(exampleFiles(t), 2)), "SCHEMAHOOK_WAIT_FOR_DB=3s"}
	start := time.Now()
	r := cli(t, down, good, "update")
	if took := time.Since(start); r.Code != exitTimeout || took < 3*time.Second {
		t.Fatalf("update with good migrations and no database: exit %d after %s; want exit %d after waiting 3s", r.Code, took.Round(time.Millisecond), exitTimeout)
	}
}

// On a database at this release's head whose applied migration's file changed, `check` does not
// say "schema is current" while status says drift and update refuses: it warns (exit 0: the
// schema is this release's, the app may start), or fails with --strict (exit 4). The gate does
// not wait for drift to go away.
func TestCheckWarnsOnDrift(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	withDir := func(files map[string]string) []string { return []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)} }
	if r := cli(t, db.URL, withDir(files), "update"); r.Code != exitOK {
		t.Fatalf("update: exit %d\n%s", r.Code, r.Stderr)
	}
	edited := exampleFiles(t)
	edited["000004_projects_slug.up.sql"] = strings.Replace(edited["000004_projects_slug.up.sql"], "slug", "slug ", 1)
	env := withDir(edited)

	r := cli(t, db.URL, env, "check")
	if r.Code != exitOK || !strings.Contains(r.Stderr, `"level":"WARN"`) || !strings.Contains(r.Stderr, "000004_projects_slug.up.sql: file changed after it was applied") ||
		!strings.Contains(r.Stderr, "--strict") || strings.Contains(r.Stderr, "schema is current") {
		t.Errorf("check on a drifted database at head: exit %d, want 0 with a warning naming the file and --strict, never \"schema is current\":\n%s", r.Code, r.Stderr)
	}
	r = cli(t, db.URL, env, "check", "--strict")
	if r.Code != exitDrift || !strings.Contains(r.Stderr, "000004_projects_slug.up.sql") {
		t.Errorf("check --strict on a drifted database: exit %d, want %d\n%s", r.Code, exitDrift, r.Stderr)
	}
	start := time.Now()
	r = cli(t, db.URL, env, "check", "--wait", "30s", "--strict")
	if took := time.Since(start); r.Code != exitDrift || took > 10*time.Second {
		t.Errorf("check --wait --strict on a drifted database: exit %d after %s, want %d at once", r.Code, took.Round(time.Millisecond), exitDrift)
	}
	if s := decodeStatus(t, cli(t, db.URL, env, "status", "-o", "json").Stdout); s.State != "drift" {
		t.Errorf("status state %q, want drift", s.State)
	}
	if r := cli(t, db.URL, env, "update"); r.Code != exitDrift {
		t.Errorf("update on a drifted database: exit %d, want %d", r.Code, exitDrift)
	}
	// Behind this release as well: not current, whatever --strict says.
	more := maps.Clone(edited)
	more["000006_more.up.sql"], more["000006_more.down.sql"] = "CREATE TABLE more (id int);\n", "DROP TABLE more;\n"
	if r := cli(t, db.URL, withDir(more), "check"); r.Code != exitNotCurrent {
		t.Errorf("check on a drifted database behind this release: exit %d, want %d\n%s", r.Code, exitNotCurrent, r.Stderr)
	}
}
