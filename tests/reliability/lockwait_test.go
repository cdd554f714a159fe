package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockFiles are a table at version 1 and, at version 2, an ALTER that needs ACCESS EXCLUSIVE on it.
func lockFiles() map[string]string {
	return map[string]string{
		"000001_t.up.sql":      "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t SELECT generate_series(1, 100);\n",
		"000001_t.down.sql":    "DROP TABLE t;\n",
		"000002_note.up.sql":   "ALTER TABLE t ADD COLUMN note text;\n",
		"000002_note.down.sql": "ALTER TABLE t DROP COLUMN note;\n",
	}
}

// atVersion1 returns a database at version 1 of lockFiles and the directory of all of them.
func atVersion1(t *testing.T) (*DB, []string) {
	t.Helper()
	db := newDB(t)
	files := lockFiles()
	first := map[string]string{"000001_t.up.sql": files["000001_t.up.sql"], "000001_t.down.sql": files["000001_t.down.sql"]}
	if r := run(t, db.URL, migrationsEnv(writeDir(t, first)), "update"); r.code != exitOK {
		t.Fatalf("update to version 1: exit %d\n%s", r.code, r.stderr)
	}
	return db, migrationsEnv(writeDir(t, files))
}

// holdTable opens a session named app that reads t in a transaction it leaves open: it holds
// ACCESS SHARE on t until the returned function commits it. It returns the session's pid.
func holdTable(t *testing.T, url, app string) (int, func()) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	ctx := context.Background()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(ctx) })
	if _, err := c.Exec(ctx, "BEGIN; SELECT count(*) FROM t"); err != nil {
		t.Fatal(err)
	}
	return int(c.PgConn().PID()), func() {
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
}

// retryWarnings returns the blocked_by attribute of each "lock not available, retrying" line.
func retryWarnings(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "lock not available, retrying" {
			continue
		}
		s, _ := rec["blocked_by"].(string)
		out = append(out, s)
	}
	return out
}

// assertUntouched checks that the database is still at version 1, clean, without migration 2's column.
func assertUntouched(t *testing.T, db *DB) {
	t.Helper()
	c := connect(t, db.AdminURL)
	var note bool
	if err := c.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM information_schema.columns
		WHERE table_name = 't' AND column_name = 'note')`).Scan(&note); err != nil {
		t.Fatal(err)
	}
	if v, dirty := versionRow(t, c); v != 1 || dirty || note || len(historyVersions(t, c)) != 1 {
		t.Fatalf("after the run: version (%d, %t), column note %t, history %v; want (1, false), no column, history [1]",
			v, dirty, note, historyVersions(t, c))
	}
}

var gaveUpRE = regexp.MustCompile(`migration 000002_note.up.sql: gave up after ([0-9]+) attempts to lock table t \(lock_timeout 200ms\): blocked by `)

// TestLockGiveUpNamesBlocker: a transaction that holds a table past --timeout makes the update
// give up; every retry warning and the final error name the session that blocks it — its pid
// and application, and its state, start and query when the hook's role may see them (its own
// sessions) — and the error says the database is still at the previous version, clean.
func TestLockGiveUpNamesBlocker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		admin   bool     // the blocker is another role's session
		details []string // what the error says of it besides pid and application
	}{
		{name: "own role", details: []string{`, idle in transaction since `, `query "BEGIN; SELECT count(*) FROM t"`, "holding AccessShareLock"}},
		{name: "another role", admin: true, details: []string{`, role "`, "hidden from this role", "holding AccessShareLock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, env := atVersion1(t)
			url := db.URL
			if tc.admin {
				url = db.AdminURL
			}
			pid, release := holdTable(t, url, "nightly-report")
			defer release()
			r := run(t, db.URL, env, "update", "--lock-timeout", "200ms", "--timeout", "3s")
			msgs := r.messages()
			blocker := fmt.Sprintf(`pid %d (application "nightly-report"`, pid)
			warnings := retryWarnings(r.stderr)
			if r.code != exitTimeout || len(warnings) < 2 {
				t.Fatalf("exit %d with %d retry warnings, want %d after several retries:\n%s", r.code, len(warnings), exitTimeout, msgs)
			}
			for i, w := range warnings {
				if !strings.HasPrefix(w, blocker) {
					t.Errorf("retry warning %d says blocked_by %q, want it to start with %q", i+1, w, blocker)
				}
			}
			// The last attempt may have been cancelled by the deadline rather than timed out.
			m := gaveUpRE.FindStringSubmatch(msgs)
			if m == nil || (m[1] != fmt.Sprint(len(warnings)) && m[1] != fmt.Sprint(len(warnings)+1)) {
				t.Errorf("the output does not say \"gave up after %d (or %d) attempts to lock table t (lock_timeout 200ms): blocked by …\":\n%s", len(warnings), len(warnings)+1, msgs)
			}
			for _, s := range append([]string{": blocked by " + blocker, "; still at version 1, clean", "SQLSTATE 55P03"}, tc.details...) {
				if !strings.Contains(msgs, s) {
					t.Errorf("the output does not say %q:\n%s", s, msgs)
				}
			}
			assertUntouched(t, db)
		})
	}
}

// TestDeadlineDuringLockWait: when --timeout passes while a statement waits for a lock, the
// statement is cancelled on the server, which answers: the outcome is known (rolled back), not
// reported as a lost connection, and the migration lock is released normally.
func TestDeadlineDuringLockWait(t *testing.T) {
	db, env := atVersion1(t)
	_, release := holdTable(t, db.URL, "nightly-report")
	defer release()
	r := run(t, db.URL, env, "update", "--lock-timeout", "30s", "--timeout", "3s")
	msgs := r.messages()
	if r.code != exitTimeout {
		t.Fatalf("exit %d, want %d:\n%s", r.code, exitTimeout, msgs)
	}
	for _, bad := range []string{"not known", "conn closed", "releasing the migration lock"} {
		if strings.Contains(msgs, bad) {
			t.Errorf("the output says %q although the server answered the cancel:\n%s", bad, msgs)
		}
	}
	if !strings.Contains(msgs, "rolled back; still at version 1, clean") {
		t.Errorf("the output does not say \"rolled back; still at version 1, clean\":\n%s", msgs)
	}
	assertUntouched(t, db)
}

// TestInterruptRollsBack: SIGINT or SIGTERM while a migration runs cancels its statement on the
// server, rolls its transaction back and says so; the database is verified clean at the
// previous version and the migration lock is released.
func TestInterruptRollsBack(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			db, _ := atVersion1(t)
			files := lockFiles()
			files["000002_note.up.sql"] = "CREATE TABLE b (id int);\nALTER TABLE t ADD COLUMN note text;\nSELECT pg_sleep(60);\n"
			files["000002_note.down.sql"] = "ALTER TABLE t DROP COLUMN note;\nDROP TABLE b;\n"
			p := start(t, db.URL, migrationsEnv(writeDir(t, files)), "update")
			admin := connect(t, db.AdminURL)
			deadline := time.Now().Add(30 * time.Second)
			for {
				var n int
				if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the migration never reached its pg_sleep:\n%s", p.stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			r := p.wait(20 * time.Second)
			msgs := r.messages()
			t.Logf("exit %d:\n%s", r.code, msgs)
			if r.code != exitFailed || !strings.Contains(msgs, "000002_note.up.sql: interrupted; rolled back; still at version 1, clean") {
				t.Errorf("exit %d, want %d saying \"000002_note.up.sql: interrupted; rolled back; still at version 1, clean\"", r.code, exitFailed)
			}
			for _, bad := range []string{"not known", "conn closed", "releasing the migration lock"} {
				if strings.Contains(msgs, bad) {
					t.Errorf("the output says %q although the server answered the cancel", bad)
				}
			}
			var b bool
			if err := admin.QueryRow(context.Background(), "SELECT to_regclass('b') IS NOT NULL").Scan(&b); err != nil || b {
				t.Errorf("table b exists (%v) after the interrupted migration was rolled back", err)
			}
			assertUntouched(t, db)
		})
	}
}
