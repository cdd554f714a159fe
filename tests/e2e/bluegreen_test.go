package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
)

// TestCopyStrategy is blue/green on the real cluster: install at schema 3 on a copy; upgrade to
// 4 while a reader keeps querying the old release's database; the new pods come up on the new
// copy while the old one is frozen and untouched; `helm rollback` switches back with no down
// migration; upgrading again copies afresh; a third copy makes retention drop the oldest; and a
// rollback after the serving database took writes is refused by the guard with what would be
// lost, changing nothing.
func TestCopyStrategy(t *testing.T) {
	s := setup(t)
	bg := newBlueGreen(s)
	for v := 3; v <= 5; v++ {
		s.migrationsConfigMap(fmt.Sprintf("migrations-v%d", v), exampleMigrations(t, v))
	}

	// Revision 1: schema 3 on base__v3, copied from the (empty) base.
	if _, err := s.install(bg.values(3), true); err != nil {
		t.Fatalf("helm install (copy, schema 3): %v", err)
	}
	bg.assertServing(3)
	bg.assertVersion(bg.copyName(3), 3)
	bg.exec(bg.copyName(3), `INSERT INTO accounts (email) SELECT 'seed' || g || '@example.com' FROM generate_series(1, 100) g`)
	s.takeHookLogs()

	// Revision 2: schema 4, while a reader of the old release keeps querying base__v3.
	r := bg.startReader(bg.copyName(3))
	if _, _, err := s.upgrade(bg.values(4), true); err != nil {
		t.Fatalf("helm upgrade (copy, schema 4): %v", err)
	}
	pods := bg.assertServing(4)
	logs := s.takeHookLogs()
	time.Sleep(time.Second) // the reader goes on against the frozen source
	stats := r.stop()
	froze := logTime(t, logs, "froze the database")
	window := firstReady(pods).Sub(froze)
	t.Logf("P9 cluster: writer freeze window (freeze → first new pod Ready) %s; old-release reader: %d reads, %d errors, longest gap %s",
		window.Round(10*time.Millisecond), stats.ok, stats.failed, stats.maxGap.Round(10*time.Millisecond))
	writeBenchResult(t, "freeze_window_seconds", window.Seconds())
	writeBenchResult(t, "reader_longest_gap_seconds", stats.maxGap.Seconds())
	if stats.okAfter == 0 {
		t.Errorf("the old release's reader read nothing after the switch (%d reads, %d errors): the frozen source must stay readable", stats.ok, stats.failed)
	}
	if stats.maxGap > 30*time.Second {
		t.Errorf("the old release's reader could not read for %s", stats.maxGap)
	}
	bg.assertVersion(bg.copyName(3), 3) // the source: untouched, frozen
	bg.assertVersion(bg.copyName(4), 4)
	if !bg.frozen(bg.copyName(3)) || bg.frozen(bg.copyName(4)) {
		t.Errorf("frozen: old %t (want true), new %t (want false)", bg.frozen(bg.copyName(3)), bg.frozen(bg.copyName(4)))
	}
	if n := bg.count(bg.copyName(4)); n != 100 {
		t.Errorf("the new copy has %d accounts, want the 100 of the source", n)
	}

	// helm rollback to revision 1: the guard switches back to base__v3, no down migration.
	historyBefore := bg.history(bg.copyName(3))
	if err := s.rollback(1); err != nil {
		t.Fatalf("helm rollback 1: %v\n%s", err, s.takeHookLogs())
	}
	bg.assertServing(3)
	if got := bg.history(bg.copyName(3)); !slices.Equal(got, historyBefore) {
		t.Errorf("switching back changed the old database's history: %v → %v", historyBefore, got)
	}
	if bg.frozen(bg.copyName(3)) || !bg.frozen(bg.copyName(4)) {
		t.Errorf("after the switch back: frozen old %t (want false), new %t (want true)", bg.frozen(bg.copyName(3)), bg.frozen(bg.copyName(4)))
	}
	bg.exec(bg.copyName(3), `INSERT INTO accounts (email) VALUES ('after-switch-back@example.com')`)
	s.takeHookLogs()

	// Upgrading again copies afresh from base__v3 (with the write made after the switch back).
	if _, _, err := s.upgrade(bg.values(4), true); err != nil {
		t.Fatalf("helm upgrade (copy, schema 4 again): %v", err)
	}
	bg.assertServing(4)
	if n := bg.count(bg.copyName(4)); n != 101 {
		t.Errorf("the fresh copy has %d accounts, want 101", n)
	}
	// A third copy: with keep 2, retention drops base__v3 (neither serving nor the way back).
	if _, _, err := s.upgrade(bg.values(5), true); err != nil {
		t.Fatalf("helm upgrade (copy, schema 5): %v", err)
	}
	bg.assertServing(5)
	if got, want := bg.databases(), []string{s.dbName, s.dbName + "__schemahook", bg.copyName(4), bg.copyName(5)}; !slices.Equal(got, want) {
		t.Errorf("databases after the third copy: %v, want %v (retention drops %s)", got, want, bg.copyName(3))
	}
	s.takeHookLogs()

	// Writes to the serving base__v5, then a rollback to schema 4: refused, nothing changes.
	bg.exec(bg.copyName(5), `INSERT INTO accounts (email) SELECT 'late' || g || '@example.com' FROM generate_series(1, 7) g`)
	before := podUIDs(s.assertAppReady())
	rev := s.lastRelease().Version
	err := s.rollback(rev - 1)
	if err == nil {
		t.Fatal("helm rollback after writes to the serving copy succeeded")
	}
	log := s.jobLog(guardName)
	if msg, ok := exitLine(t, log, 11); !ok || !strings.Contains(msg, "public.accounts (7 inserted, 0 updated, 0 deleted)") || !strings.Contains(msg, "acceptWriteLoss") {
		t.Errorf("the guard's refusal (exit 11) does not say what would be lost:\n%s", log)
	}
	if after := podUIDs(s.assertAppReady()); !slices.Equal(before, after) {
		t.Errorf("the refused rollback replaced the app pods")
	}
	if bg.serving() != bg.copyName(5) || bg.frozen(bg.copyName(5)) {
		t.Errorf("after the refusal: serving %s, frozen %t; want %s serving, writable", bg.serving(), bg.frozen(bg.copyName(5)), bg.copyName(5))
	}
	bg.exec(bg.copyName(5), `INSERT INTO accounts (email) VALUES ('still-writable@example.com')`)
}

// blueGreen is the copy strategy's view of a suite: values, the copies, the app role.
type blueGreen struct {
	s *suite
}

func newBlueGreen(s *suite) *blueGreen {
	t := s.t
	ctx := ctxT(t, 30*time.Second)
	// The hook copies as the application's role: it needs CREATEDB (it owns the database).
	admin := s.connect(ctx, "")
	if _, err := admin.Exec(ctx, "ALTER ROLE "+pgx.Identifier{s.env.pgUser}.Sanitize()+" CREATEDB"); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(ctx)
	// The suite's superuser session on the base would block the copy (the app role may not end
	// it; the hook would refuse, rightly): this test queries with short sessions instead.
	_ = s.db.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := s.connect(ctx, "")
		defer c.Close(ctx)
		rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, s.dbName+"__")
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Errorf("dropping %s: %v", n, err)
			}
		}
		if _, err := c.Exec(ctx, "ALTER ROLE "+pgx.Identifier{s.env.pgUser}.Sanitize()+" NOCREATEDB"); err != nil {
			t.Errorf("revoking CREATEDB: %v", err)
		}
	})
	return &blueGreen{s: s}
}

func (bg *blueGreen) copyName(v int) string { return fmt.Sprintf("%s__v%d", bg.s.dbName, v) }

// values are the release's values at schema v with the copy strategy, keeping 2 copies.
func (bg *blueGreen) values(v int) map[string]any {
	return bg.s.values(fmt.Sprintf("migrations-v%d", v), "schemahook.config.updateSchema=true",
		"schemahook.schemaUpdate.strategy=copy", fmt.Sprintf("schemahook.schemaUpdate.copy.schemaVersion=%d", v),
		"schemahook.schemaUpdate.copy.keep=2")
}

// with runs fn on a short superuser session to database.
func (bg *blueGreen) with(database string, fn func(ctx context.Context, c *pgx.Conn)) {
	bg.s.t.Helper()
	ctx := ctxT(bg.s.t, 30*time.Second)
	c := bg.s.connect(ctx, database)
	defer c.Close(ctx)
	fn(ctx, c)
}

// exec runs sql on database as the application's role would (a plain session, read-write unless
// the database is frozen), failing the test on error.
func (bg *blueGreen) exec(database, sql string) {
	bg.s.t.Helper()
	bg.with(database, func(ctx context.Context, c *pgx.Conn) {
		if _, err := c.Exec(ctx, sql); err != nil {
			bg.s.t.Fatalf("%s on %s: %v", sql, database, err)
		}
	})
}

func (bg *blueGreen) count(database string) (n int) {
	bg.with(database, func(ctx context.Context, c *pgx.Conn) {
		if err := c.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
			bg.s.t.Fatal(err)
		}
	})
	return n
}

func (bg *blueGreen) assertVersion(database string, want int) {
	bg.s.t.Helper()
	bg.with(database, func(ctx context.Context, c *pgx.Conn) {
		var v int
		var dirty bool
		if err := c.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&v, &dirty); err != nil || v != want || dirty {
			bg.s.t.Errorf("%s: version (%d, dirty %t), %v; want %d clean", database, v, dirty, err, want)
		}
	})
}

func (bg *blueGreen) history(database string) (out []int) {
	bg.with(database, func(ctx context.Context, c *pgx.Conn) {
		rows, _ := c.Query(ctx, `SELECT version FROM schemahook_history ORDER BY version`)
		var err error
		if out, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
			bg.s.t.Fatal(err)
		}
	})
	return out
}

func (bg *blueGreen) frozen(database string) bool {
	var ro string
	bg.with(database, func(ctx context.Context, c *pgx.Conn) {
		_ = c.QueryRow(ctx, `SHOW default_transaction_read_only`).Scan(&ro)
	})
	return ro == "on"
}

func (bg *blueGreen) serving() (name string) {
	bg.with(bg.s.dbName+"__schemahook", func(ctx context.Context, c *pgx.Conn) {
		_ = c.QueryRow(ctx, `SELECT name FROM schemahook_copies WHERE serving`).Scan(&name)
	})
	return name
}

func (bg *blueGreen) databases() (out []string) {
	bg.with("", func(ctx context.Context, c *pgx.Conn) {
		rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE datname = $1 OR starts_with(datname, $1 || '__') ORDER BY 1`, bg.s.dbName)
		out, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	})
	return out
}

// assertServing checks that the app's pods are Ready on the copy of schema v, that the lineage
// says it serves, and returns the pods.
func (bg *blueGreen) assertServing(v int) []corev1.Pod {
	bg.s.t.Helper()
	pods := bg.s.assertAppReady()
	for _, p := range pods {
		for _, ctr := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
			for _, e := range ctr.Env {
				if e.Name == "PGDATABASE" && e.Value != bg.copyName(v) {
					bg.s.t.Errorf("pod %s container %s: PGDATABASE=%s, want %s", p.Name, ctr.Name, e.Value, bg.copyName(v))
				}
			}
		}
	}
	if got := bg.serving(); got != bg.copyName(v) {
		bg.s.t.Errorf("the lineage says %s serves, want %s", got, bg.copyName(v))
	}
	return pods
}

// reader queries a database in a loop as the application's role, as an old release's pod would.
type reader struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	st    readerStats
}

type readerStats struct {
	ok, failed, okAfter int
	maxGap              time.Duration
	afterMark           bool
}

func (bg *blueGreen) startReader(database string) *reader {
	u, err := url.Parse(bg.s.env.adminURL)
	if err != nil {
		bg.s.t.Fatal(err)
	}
	u.User = url.UserPassword(bg.s.env.pgUser, bg.s.env.pgPassword)
	u.Path = "/" + database
	r := &reader{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		var c *pgx.Conn
		last := time.Now()
		for {
			select {
			case <-r.stopc:
				if c != nil {
					_ = c.Close(context.Background())
				}
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if c == nil || c.IsClosed() {
				c, err = pgx.Connect(ctx, u.String())
			}
			if err == nil {
				var n int
				err = c.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n)
			}
			cancel()
			r.mu.Lock()
			if err == nil {
				r.st.ok++
				if r.st.afterMark {
					r.st.okAfter++
				}
				if gap := time.Since(last); gap > r.st.maxGap {
					r.st.maxGap = gap
				}
				last = time.Now()
			} else {
				r.st.failed++
				if c != nil {
					_ = c.Close(context.Background())
				}
				c = nil
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// stop marks the end of the upgrade, lets the reader go on for a moment, stops it and returns
// its counts (okAfter: reads after the mark).
func (r *reader) stop() readerStats {
	r.mu.Lock()
	r.st.afterMark = true
	r.mu.Unlock()
	time.Sleep(time.Second)
	close(r.stopc)
	<-r.done
	return r.st
}

// logTime returns the time of the first JSON log line whose msg is msg.
func logTime(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if i := strings.Index(line, "{"); i >= 0 {
			var rec struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal([]byte(line[i:]), &rec) == nil && strings.HasPrefix(rec.Msg, msg) {
				return rec.Time
			}
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return time.Time{}
}

// firstReady is when the first of pods became Ready.
func firstReady(pods []corev1.Pod) time.Time {
	var first time.Time
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && (first.IsZero() || c.LastTransitionTime.Time.Before(first)) {
				first = c.LastTransitionTime.Time
			}
		}
	}
	return first
}

// writeBenchResult appends name=value to $SCHEMAHOOK_BENCH_CLUSTER_OUT when set, for the bench's
// part P9 (the cluster's half of it).
func writeBenchResult(t *testing.T, name string, v float64) {
	path := os.Getenv("SCHEMAHOOK_BENCH_CLUSTER_OUT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("bench output: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s=%.3f\n", name, v)
}
