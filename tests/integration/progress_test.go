package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the JSON log records with message msg.
func (l *lockedBuffer) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// While it works, update says what it sends — each migration, or an initial install's group —
// and, during a long statement, whether it waits for a lock and on whom, or just runs; status,
// on a read-only role, shows who runs which file since when.
func TestProgressWhileMigrating(t *testing.T) {
	db := pgtest.New(t)
	ctx := ctxT(t, 2*time.Minute)
	files := map[string]string{
		"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n",
		"000002_b.up.sql": "CREATE TABLE b (id int);\n", "000002_b.down.sql": "DROP TABLE b;\n",
		"000003_a_x.up.sql": "ALTER TABLE a ADD COLUMN x int;\n", "000003_a_x.down.sql": "ALTER TABLE a DROP COLUMN x;\n",
		"000004_slow.up.sql": "SELECT pg_sleep(1);\n", "000004_slow.down.sql": "SELECT 1;\n",
	}
	update := func(to int) *lockedBuffer {
		t.Helper()
		logs := &lockedBuffer{}
		// No lock timeout: the blocked statement waits, as a CONCURRENTLY one would.
		r, _ := countedRunner(t, db, writeDir(t, upTo(files, to)), pgdriver.Options{LockTimeout: -1, Heartbeat: 300 * time.Millisecond}, nil,
			runner.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
		if res, err := r.Update(ctx); err != nil || res.To != to {
			t.Fatalf("update to %d: %+v, %v\n%s", to, res, err, logs.b.String())
		}
		return logs
	}

	logs := update(2)
	if g := logs.records("applying migrations in one transaction"); len(g) != 1 || g[0]["migrations"] != "migrations 1–2" || g[0]["first"] != "000001_a.up.sql" {
		t.Errorf("initial install: %v, want one line for the group of migrations 1–2\n%s", g, logs.b.String())
	}

	c := db.Conn(t)
	reader := "reader_" + strings.TrimPrefix(db.Name, "t_")
	reader = reader[:min(len(reader), 60)]
	for _, q := range []string{"CREATE ROLE " + pgx.Identifier{reader}.Sanitize() + " LOGIN PASSWORD 'pw'",
		"GRANT SELECT ON schema_migrations, schemahook_history TO " + pgx.Identifier{reader}.Sanitize()} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = c.Exec(context.Background(), "DROP OWNED BY "+pgx.Identifier{reader}.Sanitize())
		_, _ = c.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{reader}.Sanitize())
	})
	readerURL, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	readerURL.User = url.UserPassword(reader, "pw")

	blocker := db.Conn(t)
	if _, err := blocker.Exec(ctx, "BEGIN; LOCK TABLE a IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	var blockerPID int
	if err := blocker.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&blockerPID); err != nil {
		t.Fatal(err)
	}
	done := make(chan *lockedBuffer, 1)
	go func() { done <- update(3) }()

	// Status, on the read-only role, while migration 3 waits.
	cfg, err := dbconn.Config(readerURL.String())
	if err != nil {
		t.Fatal(err)
	}
	var st *runner.Status
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st, err = runner.New(cfg, load(t, writeDir(t, upTo(files, 3)))).Status(ctx); err != nil {
			t.Fatal(err)
		}
		if st.State == "migrating" {
			break
		}
	}
	if st.State != "migrating" || st.InProgress == nil || st.InProgress.File != "000003_a_x.up.sql" || st.InProgress.Version != 3 ||
		st.InProgress.Role == "" || time.Since(st.InProgress.Since) > time.Minute || !strings.Contains(st.Message, "000003_a_x.up.sql") {
		t.Errorf("status while migration 3 runs: state %q, in progress %+v, message %q; want migrating, file 000003_a_x.up.sql, who and since",
			st.State, st.InProgress, st.Message)
	}
	time.Sleep(time.Second) // a few heartbeats
	if _, err := blocker.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	logs = <-done
	if a := logs.records("applying migration"); len(a) != 1 || a[0]["file"] != "000003_a_x.up.sql" {
		t.Errorf("applying lines %v, want one for 000003_a_x.up.sql\n%s", a, logs.b.String())
	}
	beats := logs.records("still running")
	waiting := false
	for _, b := range beats {
		if b["status"] == "waiting for a lock" && strings.Contains(fmt.Sprint(b["blocked_by"]), fmt.Sprintf("pid %d", blockerPID)) &&
			b["lock"] == "table a" && b["file"] == "000003_a_x.up.sql" {
			waiting = true
		}
	}
	if !waiting {
		t.Errorf("no heartbeat saying migration 3 waits for table a, blocked by pid %d:\n%s", blockerPID, logs.b.String())
	}

	logs = update(4)
	beats = logs.records("still running")
	if len(beats) == 0 || beats[0]["status"] != "running" || beats[0]["file"] != "000004_slow.up.sql" {
		t.Errorf("heartbeats of a statement that runs without waiting: %v\n%s", beats, logs.b.String())
	}
	// After the step, the session's name is its own again: status shows no migration.
	st, err = runner.New(cfg, load(t, writeDir(t, upTo(files, 4)))).Status(ctx)
	if err != nil || st.State != "current" || st.InProgress != nil {
		t.Errorf("status after the update: %+v, %v", st, err)
	}
}
