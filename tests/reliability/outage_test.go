package reliability

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schemahook/schemahook/tests/pgtest"
)

// privateServer starts a PostgreSQL server of this test's own from local binaries, so that it
// can be stopped and restarted without disturbing other tests, and creates database "app".
func privateServer(t *testing.T) (*pgtest.Local, string) {
	t.Helper()
	l, err := pgtest.StartLocal()
	if err != nil {
		pgtest.Unavailable(t, fmt.Sprintf("needs PostgreSQL server binaries (apt-get install postgresql, or PGBIN) to stop and restart a private server: %v", err))
	}
	t.Cleanup(func() {
		if err := l.Destroy(); err != nil {
			t.Logf("removing the private server: %v", err)
		}
	})
	addSecret(t, l.Password)
	c := connect(t, l.AdminURL())
	if _, err := c.Exec(context.Background(), "CREATE DATABASE app"); err != nil {
		t.Fatal(err)
	}
	return l, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/app?sslmode=disable", l.Password, l.Port)
}

var outageFiles = map[string]string{
	"000001_a.up.sql":   "CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1);\n",
	"000001_a.down.sql": "DROP TABLE a;\n",
	// The slow one: work done before the sleep must vanish when the server dies during it.
	"000002_slow.up.sql": "CREATE TABLE b (id int PRIMARY KEY);\nINSERT INTO b SELECT generate_series(1, 1000);\n" +
		"UPDATE a SET id = 2;\nSELECT pg_sleep(1.5);\nALTER TABLE a ADD COLUMN x int;\n",
	"000002_slow.down.sql": "ALTER TABLE a DROP COLUMN x;\nUPDATE a SET id = 1;\nDROP TABLE b;\n",
}

var attemptsRE = regexp.MustCompile(`did not accept connections within [0-9.a-zµ]+ \(([0-9]+) attempts\)`)

func TestDatabaseOutages(t *testing.T) {
	l, appURL := privateServer(t)
	env := migrationsEnv(writeDir(t, outageFiles))

	t.Run("down at start, up within --wait-for-db", func(t *testing.T) {
		if err := l.Stop(); err != nil {
			t.Fatal(err)
		}
		p := start(t, appURL, env, "update", "--wait-for-db", "30s")
		p.assertArgsClean()
		if !p.waitLog("waiting for the database", 15*time.Second) {
			t.Fatalf("update did not say it is waiting for the database:\n%s", p.stderr.String())
		}
		time.Sleep(2 * time.Second) // the outage goes on while update keeps retrying
		downFor := time.Since(p.started)
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		// The first line logged after connecting; its distance from "up" is the backoff's
		// last sleep (capped at 2s) plus the connection.
		connectedIn := "?"
		if p.waitLog("initializing empty database", 30*time.Second) {
			connectedIn = time.Since(up).Round(time.Millisecond).String()
		}
		r := p.wait(60 * time.Second)
		if r.code != exitOK {
			t.Fatalf("update after the database came up: exit %d\n%s", r.code, r.stderr)
		}
		if !regexp.MustCompile(`"msg":"connected to the database".*"after":"[0-9.]+s"`).MatchString(r.stderr) {
			t.Errorf("update did not say when it connected after waiting:\n%s", r.stderr)
		}
		c := connect(t, appURL)
		if v, dirty := versionRow(t, c); v != 2 || dirty {
			t.Fatalf("schema_migrations = (%d, %t), want (2, false)", v, dirty)
		}
		t.Logf("database down for %s after update started; update connected ≤%s after the server was up and succeeded %s after its start (migration 2 sleeps 1.5s)",
			downFor.Round(time.Millisecond), connectedIn, r.elapsed.Round(time.Millisecond))
		// Back to empty for the next cases.
		if _, err := c.Exec(context.Background(), "DROP TABLE a, b, schema_migrations, schemahook_history"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("down longer than --wait-for-db", func(t *testing.T) {
		if err := l.Stop(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
		}()
		r := run(t, appURL, env, "update", "--wait-for-db", "2s")
		msgs := r.messages()
		m := attemptsRE.FindStringSubmatch(msgs)
		if r.code != exitTimeout || m == nil {
			t.Fatalf("exit %d, want %d with \"did not accept connections within … (N attempts)\":\n%s", r.code, exitTimeout, msgs)
		}
		// Backoff: more than one attempt, but not a hot loop (100ms doubling to 2s over 2s).
		attempts, _ := strconv.Atoi(m[1])
		if attempts < 3 || attempts > 15 || r.elapsed < 2*time.Second || r.elapsed > 10*time.Second {
			t.Errorf("gave up after %d attempts in %s; want 3–15 attempts spread over ~2s", attempts, r.elapsed)
		}
		t.Logf("gave up after %s with %d attempts", r.elapsed.Round(time.Millisecond), attempts)
	})

	// The file and its COMMIT travel in one query (one round trip), so a connection lost while
	// it runs leaves the client unable to know whether the server committed: the message must
	// say so rather than claim either outcome. The database says which afterwards. On an upgrade
	// the query is one migration's; on an empty database, the whole install's transaction.
	crashCases := []struct {
		name    string
		from    int    // the version before the update: 1 is an upgrade, -1 an initial install
		unknown string // what the message says
	}{
		{name: "server crash in the middle of a slow migration", from: 1,
			unknown: "whether it was applied is not known: the database is at version 1 or at version 2, clean either way"},
		{name: "server crash in the middle of an initial install", from: -1,
			unknown: "the connection failed while the server ran migrations 1–2 (one transaction) and their COMMIT, so whether they were applied is not known: " +
				"the database is at no version (empty) or at version 2, clean either way"},
	}
	for _, tc := range crashCases {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, appURL)
			if _, err := c.Exec(context.Background(), "DROP TABLE IF EXISTS a, b, schema_migrations, schemahook_history"); err != nil {
				t.Fatal(err)
			}
			if tc.from == 1 {
				first := map[string]string{"000001_a.up.sql": outageFiles["000001_a.up.sql"], "000001_a.down.sql": outageFiles["000001_a.down.sql"]}
				if r := run(t, appURL, migrationsEnv(writeDir(t, first)), "update"); r.code != exitOK {
					t.Fatalf("update to 1: exit %d\n%s", r.code, r.stderr)
				}
			}
			p := start(t, appURL, env, "update", "--wait-for-db", "10s")
			// Poll until the slow migration is inside its pg_sleep, its earlier statements done.
			admin := connect(t, l.AdminURL())
			deadline := time.Now().Add(30 * time.Second)
			for {
				var n int
				if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND state = 'active' AND wait_event = 'PgSleep'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the slow migration never started:\n%s", p.stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := l.Stop(); err != nil { // immediate: like a crash or a failover
				t.Fatal(err)
			}
			stopped := time.Now()
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			r := p.wait(60 * time.Second)
			msgs := r.messages()
			t.Logf("update exit %d %s after the crash:\n%s", r.code, time.Since(stopped).Round(time.Millisecond), msgs)
			if r.code != exitFailed || !strings.Contains(msgs, "000002_slow.up.sql") || !strings.Contains(msgs, tc.unknown) {
				t.Errorf("exit %d, want %d naming 000002_slow.up.sql and saying %q", r.code, exitFailed, tc.unknown)
			}
			c = connect(t, appURL)
			var a, b, x bool
			if err := c.QueryRow(context.Background(), `SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NOT NULL,
				EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'x')`).Scan(&a, &b, &x); err != nil {
				t.Fatal(err)
			}
			id, wantID := 0, 0 // a.id: migration 2 sets it to 2
			if a {
				wantID = 1
				if err := c.QueryRow(context.Background(), "SELECT id FROM a").Scan(&id); err != nil {
					t.Fatal(err)
				}
			}
			v, dirty := versionRow(t, c)
			if v != tc.from || dirty || a != (tc.from == 1) || b || x || id != wantID || !slices.Equal(historyVersions(t, c), seq(1, tc.from)) {
				t.Fatalf("after the crash: version (%d, %t), table a %t (id %d), table b %t, column a.x %t, history %v; want (%d, false), nothing of migration 2",
					v, dirty, a, id, b, x, historyVersions(t, c), tc.from)
			}
			r = run(t, appURL, env, "update", "--wait-for-db", "10s")
			if r.code != exitOK {
				t.Fatalf("rerun after the crash: exit %d\n%s", r.code, r.stderr)
			}
			var rows int
			if err := c.QueryRow(context.Background(), "SELECT count(*) FROM b").Scan(&rows); err != nil || rows != 1000 {
				t.Fatalf("after the rerun b has %d rows (%v), want 1000", rows, err)
			}
			if v, dirty := versionRow(t, c); v != 2 || dirty || !slices.Equal(historyVersions(t, c), []int{1, 2}) {
				t.Fatalf("after the rerun: (%d, %t), history %v", v, dirty, historyVersions(t, c))
			}
		})
	}
}
