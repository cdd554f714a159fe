package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemahook/schemahook/hook/bluegreen"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// snapshot is everything about a database a copy must preserve: the catalog and version rows
// (pgtest.Fingerprint) and every table's rows (contents).
func (s *bgSite) snapshot(database string) (catalog string, data map[string]string) {
	s.t.Helper()
	s.with(database, func(c *pgx.Conn) { catalog, data = pgtest.Fingerprint(s.t, c), contents(s.t, c) })
	return catalog, data
}

// The copy holds exactly what the source held at the copy point, table by table, and the
// source is left as it was — only frozen, which a write then shows.
func TestCopyEqualsSourceAndSourceIsUntouched(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	s2 := newBGSite(t)
	if _, err := newRunner(t, s2.db, writeDir(t, exampleFiles(t)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	s2.with(s2.base, func(c *pgx.Conn) { seed(t, c, 500) })
	catBefore, dataBefore := s2.snapshot(s2.base)
	res := s2.activate(5, bluegreen.Options{})
	if res.Action != bluegreen.Copied || res.From != s2.base || res.Target != s2.name(5) || res.CopyPoint.IsZero() {
		t.Fatalf("result = %+v", res)
	}
	catCopy, dataCopy := s2.snapshot(s2.name(5))
	if !maps.Equal(dataCopy, dataBefore) {
		t.Fatalf("copy's tables differ from the source's:\nsource %v\ncopy   %v", dataBefore, dataCopy)
	}
	if catCopy != catBefore {
		t.Fatalf("copy's catalog differs from the source's:\n%s\n---\n%s", catBefore, catCopy)
	}
	catAfter, dataAfter := s2.snapshot(s2.base)
	if catAfter != catBefore || !maps.Equal(dataAfter, dataBefore) {
		t.Fatal("the source changed")
	}
	if !s2.frozen(s2.base) || s2.frozen(s2.name(5)) {
		t.Fatalf("frozen: source %t (want true), copy %t (want false)", s2.frozen(s2.base), s2.frozen(s2.name(5)))
	}
	var pe *pgconn.PgError
	if err := s2.write(s2.base, 1); !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("write to the frozen source = %v, want SQLSTATE 25006 read_only_sql_transaction", err)
	}
	if err := s2.write(s2.name(5), 1); err != nil {
		t.Fatalf("write to the serving copy: %v", err)
	}
	if s2.serving() != s2.name(5) {
		t.Fatalf("serving = %s", s2.serving())
	}
}

// An upgrade migrates the copy only: the source stays at its version with its data, and a
// re-run (every Argo CD sync) changes nothing.
func TestCopyMigratesTheCopyOnly(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, upTo(exampleFiles(t), 2)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	s.with(s.base, func(c *pgx.Conn) { seed(t, c, 200) })
	catBefore, dataBefore := s.snapshot(s.base)

	res := s.activate(5, bluegreen.Options{})
	if res.Action != bluegreen.Copied {
		t.Fatalf("action = %s", res.Action)
	}
	catAfter, dataAfter := s.snapshot(s.base)
	if catAfter != catBefore || !maps.Equal(dataAfter, dataBefore) {
		t.Fatalf("the source changed:\n%s\n---\n%s", catBefore, catAfter)
	}
	var accountsSource, accountsCopy map[string]string
	s.with(s.base, func(c *pgx.Conn) {
		if v, _ := versionRow(t, c); v != 2 {
			t.Fatalf("source version %d, want 2", v)
		}
		accountsSource = contents(t, c)
	})
	s.with(s.name(5), func(c *pgx.Conn) {
		if v, dirty := versionRow(t, c); v != 5 || dirty {
			t.Fatalf("copy version (%d, %t), want (5, false)", v, dirty)
		}
		if !tableExists(t, c, "account_settings") {
			t.Fatal("the copy was not migrated")
		}
		accountsCopy = contents(t, c)
	})
	if accountsCopy[`public.accounts`] != accountsSource[`public.accounts`] {
		t.Fatalf("accounts differ: %s vs %s", accountsSource["public.accounts"], accountsCopy["public.accounts"])
	}

	again := s.activate(5, bluegreen.Options{})
	if again.Action != bluegreen.Current || len(again.Dropped) != 0 {
		t.Fatalf("re-run = %+v, want current with nothing dropped", again)
	}
	// A write that gets past the freeze (a session that turns read-only off) is not in the copy:
	// every later run says so.
	s.with(s.base, func(c *pgx.Conn) {
		for _, q := range []string{`SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`,
			`INSERT INTO accounts (email) VALUES ('past-the-freeze@example.com')`, `SELECT pg_stat_force_next_flush()`} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	})
	var logs clitest.Buffer
	if _, err := s.engineLogging(s.url, 5, bluegreen.Options{}, slog.New(slog.NewTextHandler(&logs, nil))).Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "took writes after the copy point") || !strings.Contains(logs.String(), "public.accounts (1 inserted") {
		t.Fatalf("no warning about the write to the frozen source:\n%s", logs.String())
	}
	if got := s.databases(); !slices.Equal(got, []string{s.base, s.base + "__schemahook", s.name(5)}) {
		t.Fatalf("databases = %v", got)
	}
}

// A writer that keeps inserting while the hook copies either committed before the copy point,
// and its row is in the copy, or was refused (ended or read-only): no acknowledged write is
// missing from the copy.
func TestCopyRacingWriterCommittedOrRefused(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, exampleFiles(t)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	s.with(s.base, func(c *pgx.Conn) { seed(t, c, 2000) })

	var (
		mu        sync.Mutex
		committed []string
		refused   []string
		stop      = make(chan struct{})
		done      = make(chan struct{})
	)
	go func() {
		defer close(done)
		var c *pgx.Conn
		for i := 0; ; i++ {
			select {
			case <-stop:
				if c != nil {
					_ = c.Close(context.Background())
				}
				return
			default:
			}
			if c == nil || c.IsClosed() {
				var err error
				cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				c, err = pgx.Connect(cctx, s.adminURL(s.base))
				cancel()
				if err != nil {
					c = nil
					mu.Lock()
					refused = append(refused, "connect: "+err.Error())
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
			}
			email := fmt.Sprintf("race-%d@example.com", i)
			_, err := c.Exec(context.Background(), `INSERT INTO accounts (email) VALUES ($1)`, email)
			mu.Lock()
			if err == nil {
				committed = append(committed, email)
			} else {
				refused = append(refused, err.Error())
			}
			mu.Unlock()
		}
	}()
	// Let the writer get going, then copy under it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(committed)
		mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := s.activate(5, bluegreen.Options{Target: s.name(5)})
	time.Sleep(300 * time.Millisecond) // the writer keeps trying against the frozen source
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	if len(committed) < 20 || len(refused) == 0 {
		t.Fatalf("no race: %d committed, %d refused", len(committed), len(refused))
	}
	var inCopy []string
	s.with(s.name(5), func(c *pgx.Conn) {
		rows, _ := c.Query(context.Background(), `SELECT email FROM accounts WHERE email LIKE 'race-%'`)
		var err error
		if inCopy, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
	})
	var missing []string
	for _, e := range committed {
		if !slices.Contains(inCopy, e) {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged write(s) missing from the copy: %v", len(missing), missing)
	}
	readOnly := 0
	for _, r := range refused {
		if strings.Contains(r, "read-only transaction") || strings.Contains(r, "SQLSTATE 25006") {
			readOnly++
		}
	}
	t.Logf("copy point %s: %d writes committed (all in the copy), %d refused (%d read-only); copy has %d race rows",
		res.CopyPoint.Format(time.RFC3339Nano), len(committed), len(refused), readOnly, len(inCopy))
	if readOnly == 0 {
		t.Fatalf("the writer never met the read-only source after the copy: %v", refused)
	}
}

func pgdriverOpts() pgdriver.Options { return pgdriver.Options{AppliedBy: "integration-test"} }
