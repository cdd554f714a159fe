package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPasswordNeverShown: the database password appears in no output of any command — logs,
// errors, `status -o json` — and not in the process's arguments, which every user of the node
// can read from /proc. (Every other test in this package checks the output of each run it makes
// too; this one adds a password made of the characters that break naive redaction.)
func TestPasswordNeverShown(t *testing.T) {
	db := newDB(t)
	// URL delimiters, a quote, a space, percent signs and a keyword=value lookalike: each one
	// would let a regexp-based redaction stop early or miss the encoded form.
	password := "S3cr@t:/p%41ss?w=1&password=x #'" + randomHex(6)
	admin := connect(t, db.AdminURL)
	if _, err := admin.Exec(context.Background(), fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", db.Role, strings.ReplaceAll(password, "'", "''"))); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(db.URL)
	u.User = url.UserPassword(db.Role, password)
	dbURL := u.String()
	addSecret(t, password)
	addSecret(t, strings.SplitN(u.User.String(), ":", 2)[1]) // percent-encoded, as in the URL

	files := map[string]string{
		"000001_slow.up.sql":   "CREATE TABLE t (id int);\nSELECT pg_sleep(1);\n",
		"000001_slow.down.sql": "DROP TABLE t;\n",
	}
	env := migrationsEnv(writeDir(t, files))

	// A running update: its command line, while it works, holds no password.
	p := start(t, dbURL, env, "update")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(1)%' AND state = 'active'", db.Role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the update never reached its migration:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("needs /proc to read a process's command line: %v", err)
	}
	if !strings.Contains(string(cmdline), "update") {
		t.Fatalf("/proc/%d/cmdline = %q is not the update", p.cmd.Process.Pid, cmdline)
	}
	p.assertArgsClean()
	if r := p.wait(60 * time.Second); r.code != exitOK {
		t.Fatalf("update: exit %d\n%s", r.code, r.stderr)
	}

	// Every reading command, in both output formats, and failures that print connection details.
	r := run(t, dbURL, env, "status", "-o", "json")
	var st struct {
		Database string `json:"database"`
		State    string `json:"state"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != exitOK || st.State != "current" {
		t.Fatalf("status -o json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if want := fmt.Sprintf("%s@%s/%s", db.Role, u.Host, db.Name); st.Database != want {
		t.Errorf("status database = %q, want %q", st.Database, want)
	}
	run(t, dbURL, env, "status")
	run(t, dbURL, env, "check")
	run(t, dbURL, env, "plan")
	wrong := *u
	wrong.User = url.UserPassword(db.Role, password+"-wrong")
	if r := run(t, wrong.String(), env, "update"); r.code != exitError {
		t.Errorf("wrong password: exit %d, want %d", r.code, exitError)
	}
	if r := run(t, withHost(t, dbURL, closedAddr(t)), append(env, "SCHEMAHOOK_WAIT_FOR_DB=500ms"), "status", "-o", "json"); r.code != exitTimeout {
		t.Errorf("unreachable: exit %d, want %d", r.code, exitTimeout)
	}
	if r := run(t, dbURL+"&sslmode=bogus", env, "check"); r.code != exitUsage {
		t.Errorf("malformed settings: exit %d, want %d", r.code, exitUsage)
	}

	// The /proc check can fail: a URL passed as an argument is visible there (which is why the
	// chart passes it in the environment). The output of that run must still be redacted.
	leaky := start(t, "", nil, "update", "--database-url", withHost(t, dbURL, closedAddr(t)), "--wait-for-db", "30s")
	defer leaky.kill()
	if !leaky.waitLog("waiting for the database", 10*time.Second) {
		t.Fatalf("update with an unreachable --database-url did not wait:\n%s", leaky.stderr.String())
	}
	args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", leaky.cmd.Process.Pid))
	if !strings.Contains(string(args), u.User.String()) {
		t.Fatalf("self-check: /proc/%d/cmdline does not show the --database-url argument: %q", leaky.cmd.Process.Pid, args)
	}
	leaky.kill()
}
