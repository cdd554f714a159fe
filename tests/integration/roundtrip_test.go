package integration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
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

// roundTrips counts the round trips of the connections dialled through it (the first read
// that returns data after a write ends one) and keeps what they sent.
type roundTrips struct {
	mu    sync.Mutex
	n     int
	wrote bool
	sent  strings.Builder
}

func (rt *roundTrips) sentText() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sent.String()
}

func (rt *roundTrips) count() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.n
}

type countedConn struct {
	net.Conn
	rt *roundTrips
}

func (c *countedConn) Write(p []byte) (int, error) {
	// The flag goes up before the write: while a large query is written, pgconn's background
	// reader may already receive the answer, and that read must count.
	c.rt.mu.Lock()
	c.rt.wrote = c.rt.wrote || len(p) > 0
	c.rt.mu.Unlock()
	n, err := c.Conn.Write(p)
	c.rt.mu.Lock()
	c.rt.sent.Write(p[:n])
	c.rt.mu.Unlock()
	return n, err
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rt.mu.Lock()
	if c.rt.wrote && n > 0 {
		c.rt.n++
		c.rt.wrote = false
	}
	c.rt.mu.Unlock()
	return n, err
}

// countedRunner is newRunner with its connections' round trips counted. params are extra
// startup parameters (session settings); opts.AppliedBy defaults to "integration-test"; more
// runner options come after the test's logger.
func countedRunner(t testing.TB, db *pgtest.DB, dir string, opts pgdriver.Options, params map[string]string, more ...runner.Option) (*runner.Runner, *roundTrips) {
	t.Helper()
	cfg, err := dbconn.Config(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	rt := &roundTrips{}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedConn{Conn: c, rt: rt}, nil
	}
	if opts.AppliedBy == "" {
		opts.AppliedBy = "integration-test"
	}
	return runner.New(cfg, load(t, dir), append([]runner.Option{runner.WithLogger(testLogger(t)), runner.WithDriverOptions(opts)}, more...)...), rt
}

// tableFiles returns n migrations that each create a table and insert a row.
func tableFiles(n int) map[string]string {
	files := map[string]string{}
	for v := 1; v <= n; v++ {
		files[fmt.Sprintf("%06d_t%d.up.sql", v, v)] = fmt.Sprintf("CREATE TABLE t%d (id int PRIMARY KEY, note text);\nINSERT INTO t%d VALUES (1, 'it''s $1 \\ ü');\n", v, v)
		files[fmt.Sprintf("%06d_t%d.down.sql", v, v)] = fmt.Sprintf("DROP TABLE t%d; -- it's\n", v)
	}
	return files
}

// A transactional migration committed on its own costs one round trip, up (CommitEach) or
// down: the file, its version and history rows and COMMIT travel in one query. Only a constant
// number of round trips (connecting, the lock, reading the state) comes on top of one per
// migration. An upgrade that commits all or nothing (the default) sends its migrations in one
// query, as an initial install does (TestInitialInstallIsOneQuery): the same round trips for
// 29 migrations as for 10.
func TestOneRoundTripPerMigration(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	// update brings db to version n, counting the round trips.
	update := func(db *pgtest.DB, n int, each bool) int {
		t.Helper()
		r, rt := countedRunner(t, db, writeDir(t, tableFiles(n)), pgdriver.Options{CommitEach: each}, nil)
		if res, err := r.Update(ctx); err != nil || res.To != n {
			t.Fatalf("update to %d: %+v, %v", n, res, err)
		}
		return rt.count()
	}
	downgrade := func(db *pgtest.DB, n int) int {
		t.Helper()
		r, rt := countedRunner(t, db, writeDir(t, tableFiles(n)), pgdriver.Options{}, nil)
		if res, err := r.Downgrade(ctx); err != nil || res.To != n {
			t.Fatalf("downgrade to %d: %+v, %v", n, res, err)
		}
		return rt.count()
	}
	db := pgtest.New(t)
	update(db, 1, true)
	up10 := update(db, 11, true) // applies 10 migrations
	up29 := update(db, 40, true) // applies 29
	down10 := downgrade(db, 30)  // reverts 10 migrations
	down29 := downgrade(db, 1)   // reverts 29
	db2 := pgtest.New(t)
	update(db2, 1, false)
	grouped10 := update(db2, 11, false)
	grouped29 := update(db2, 40, false)
	t.Logf("round trips: applying 10 %d, applying 29 %d; reverting 10 %d, reverting 29 %d; applying 10 all or nothing %d, 29 %d",
		up10, up29, down10, down29, grouped10, grouped29)
	if up29-up10 != 19 {
		t.Errorf("applying 29 migrations took %d round trips more than applying 10, want 19 more (one per migration)", up29-up10)
	}
	if grouped29 != grouped10 {
		t.Errorf("applying 29 migrations all or nothing took %d round trips, 10 took %d: want the same (one query)", grouped29, grouped10)
	}
	if down29-down10 != 19 {
		t.Errorf("reverting 29 migrations took %d round trips more than reverting 10, want 19 more (one per migration)", down29-down10)
	}
	if fixed := up10 - 10; fixed > 20 {
		t.Errorf("applying 10 migrations took %d round trips: %d beyond one per migration, want a small constant", up10, fixed)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 1 || dirty || !slices.Equal(historyVersions(t, c), []int{1}) || !tableExists(t, c, "t1") || tableExists(t, c, "t2") {
		t.Fatalf("after the downgrade: version (%d, %t), history %v", v, dirty, historyVersions(t, c))
	}
}

// fingerprint describes what a failed migration must leave unchanged: the objects of the
// schema, the version row and the history rows (with their row versions, so a rewrite shows).
func fingerprint(t testing.TB, c *pgx.Conn) string {
	t.Helper()
	var s string
	err := c.QueryRow(context.Background(), `SELECT
		(SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace) || ' / ' ||
		coalesce((SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE pronamespace = 'public'::regnamespace), '') || ' / ' ||
		(SELECT string_agg(version || ':' || dirty || ':' || xmin::text, ',') FROM schema_migrations) || ' / ' ||
		(SELECT string_agg(version || ':' || xmin::text, ',' ORDER BY version) FROM schemahook_history)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The one-query path appends SQL after the migration file. Files that end in odd lexical
// states or fail in various ways must either apply exactly (with their down SQL stored byte
// for byte) or fail cleanly, leaving nothing of them. Files that control the transaction
// themselves never get this far (TestTransactionControlRefused).
func TestFilesAtTheEdgesOfOneQuery(t *testing.T) {
	const (
		oneTrip  = 1 // applied, in one round trip
		twoTrips = 2 // applied, on the two-round-trip path
		fails    = 3 // fails; the database is unchanged
	)
	type tc struct {
		name      string
		up, down  string
		appliedBy string
		outcome   int
		alone     bool                        // the file must never be sent with text after it
		want      []string                    // substrings of the error
		file      bool                        // the error is the file's (a MigrationError)
		check     func(*testing.T, *pgx.Conn) // further checks on the database
	}
	oddDown := "-- it's O'Brien's: \\ \\' '' $$ $1 $x$ \"q\" */ /* ünïcødé ✓ 🎉\nDROP TABLE t2; -- '; DROP TABLE base; --\n"
	cases := []tc{
		{name: "no final semicolon", up: "CREATE TABLE t2 (id int)", outcome: oneTrip},
		{name: "trailing line comment without newline", up: "CREATE TABLE t2 (id int); -- it's done; COMMIT", outcome: oneTrip},
		{name: "only comments", up: "-- nothing to do\n/* really /* nothing */ */", outcome: oneTrip},
		{name: "quotes, backslashes, dollars and unicode in the down SQL", up: "CREATE TABLE t2 (note text DEFAULT E'tab\\there');", down: oddDown,
			appliedBy: "o'brien \\ $$ ü", outcome: oneTrip},
		{name: "dollar-quoted function body", up: "CREATE FUNCTION f2() RETURNS text LANGUAGE plpgsql AS $fn$\nBEGIN\n  RETURN 'it''s; $$ \\ ' || $q$'$q$; -- */\nEND\n$fn$;\n",
			down: "DROP FUNCTION f2();", outcome: oneTrip, check: func(t *testing.T, c *pgx.Conn) {
				var got string
				if err := c.QueryRow(context.Background(), "SELECT f2()").Scan(&got); err != nil || got != `it's; $$ \ '` {
					t.Errorf("f2() = %q, %v", got, err)
				}
			}},
		{name: "E string ending in an escaped quote", up: "CREATE TABLE t2 (note text DEFAULT E'it\\'s');", outcome: oneTrip},
		{name: "names with dollar signs", up: "CREATE TABLE t2 (a$$b$ int, c$b$ int);", outcome: oneTrip},
		{name: "duration includes the server's time", up: "CREATE TABLE t2 (id int);\nSELECT pg_sleep(0.3);\n", outcome: oneTrip,
			check: func(t *testing.T, c *pgx.Conn) {
				var ms float64
				if err := c.QueryRow(context.Background(), "SELECT duration_ms FROM schemahook_history WHERE version = 2").Scan(&ms); err != nil || ms < 300 || ms > 10000 {
					t.Errorf("duration_ms = %v (%v), want the 300ms the file slept and a little more", ms, err)
				}
			}},

		{name: "unterminated block comment", alone: true, up: "CREATE TABLE t2 (id int);\n/* no end", down: "*/ CREATE TABLE injected (id int); /*",
			outcome: fails, file: true, want: []string{"failed at line 2", "SQLSTATE 42601", "unterminated /* comment"}},
		{name: "unterminated quoted string", alone: true, up: "CREATE TABLE t2 (id int);\nSELECT 'no end", down: "'; CREATE TABLE injected (id int); --",
			outcome: fails, file: true, want: []string{"failed at line 2, column 8", "SQLSTATE 42601", "unterminated quoted string"}},
		{name: "unterminated dollar quote", alone: true, up: "CREATE TABLE t2 (id int);\nDO $$ BEGIN", down: "$$; CREATE TABLE injected (id int); --",
			outcome: fails, file: true, want: []string{"failed at line 2, column 4", "SQLSTATE 42601", "unterminated dollar-quoted string"}},
		{name: "unterminated quoted identifier", alone: true, up: "CREATE TABLE t2 (id int);\nCREATE TABLE \"t3 (id int);", down: "\"; CREATE TABLE injected (id int); --",
			outcome: fails, file: true, want: []string{"failed at line 2, column 14", "SQLSTATE 42601", "unterminated quoted identifier"}},
		{name: "unfinished last statement", up: "CREATE TABLE t2 (id int);\nCREATE TABLE t3 (id int",
			outcome: fails, file: true, want: []string{"failed at line 2, column 24", "SQLSTATE 42601", "syntax error at end of input"}},
		{name: "syntax error mid-file", up: "CREATE TABLE t2 (id int);\nCREATE TABLE t3 (id int NOT NUL);\nCREATE TABLE t4 (id int);\n",
			outcome: fails, file: true, want: []string{"failed at line 2, column 29", "SQLSTATE 42601"}},
		{name: "error with a position", up: "CREATE TABLE t2 (id int);\nSELECT 'ünï', nope FROM t2;\n",
			outcome: fails, file: true, want: []string{"failed at line 2, column 15", "SQLSTATE 42703", `column "nope" does not exist`}},
		{name: "error without a position after statements that worked", up: "CREATE TABLE t2 (id int);\nINSERT INTO t2 VALUES (1);\n  ALTER TABLE missing ADD COLUMN x int;\n",
			outcome: fails, file: true, want: []string{"failed at line 3 ", "SQLSTATE 42P01", `relation "missing" does not exist`}},
		{name: "error in the history row, with a position", up: "DROP TABLE schemahook_history;",
			outcome: fails, want: []string{"recording version 2: ", `relation "schemahook_history" does not exist`}},
		{name: "error in the version row, without a position", outcome: fails, want: []string{"recording version 2: ", "no version rows today"},
			up: "CREATE FUNCTION no_versions() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no version rows today'; END $$;\n" +
				"CREATE TRIGGER no_versions BEFORE INSERT ON schema_migrations FOR EACH ROW EXECUTE FUNCTION no_versions();\n"},
		{name: "error at COMMIT", up: "CREATE TABLE p2 (id int PRIMARY KEY);\nCREATE TABLE c2 (p int REFERENCES p2 DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO c2 VALUES (1);\n",
			outcome: fails, want: []string{"recording version 2: ", "violates foreign key constraint"}},
	}
	base := map[string]string{"000001_base.up.sql": "CREATE TABLE base (id int);\n", "000001_base.down.sql": "DROP TABLE base;\n"}
	with := func(up, down string) map[string]string {
		files := maps.Clone(base)
		files["000002_edge.up.sql"], files["000002_edge.down.sql"] = up, down
		return files
	}
	// update applies base on a new database, then counts the round trips of an update to 2.
	update := func(t *testing.T, files map[string]string, appliedBy string) (*pgx.Conn, string, *roundTrips, error) {
		t.Helper()
		db := pgtest.New(t)
		ctx := ctxT(t, time.Minute)
		if _, err := newRunner(t, db, writeDir(t, base), pgdriver.Options{}).Update(ctx); err != nil {
			t.Fatal(err)
		}
		c := db.Conn(t)
		before := fingerprint(t, c)
		r, rt := countedRunner(t, db, writeDir(t, files), pgdriver.Options{AppliedBy: appliedBy}, nil)
		_, err := r.Update(ctx)
		return c, before, rt, err
	}
	// The round trips that do not depend on the migration: a trivial one takes one.
	_, _, rt, err := update(t, with("SELECT 1;", "SELECT 1;"), "")
	if err != nil {
		t.Fatal(err)
	}
	fixed := rt.count() - 1
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.down == "" {
				tc.down = "DROP TABLE t2;\n"
			}
			c, before, rt, err := update(t, with(tc.up, tc.down), tc.appliedBy)
			// The file followed by the separator runDeferred appends: sent in one query.
			if joined := strings.Contains(rt.sentText(), tc.up+"\n;\n"); joined == tc.alone {
				t.Errorf("the file was sent with its rows appended: %t, want %t", joined, !tc.alone)
			}
			switch tc.outcome {
			case oneTrip, twoTrips:
				if err != nil {
					t.Fatalf("update: %v", err)
				}
				if got := rt.count() - fixed; got != tc.outcome {
					t.Errorf("the migration took %d round trips, want %d", got, tc.outcome)
				}
				if v, d := versionRow(t, c); v != 2 || d {
					t.Fatalf("version (%d, %t), want (2, false)", v, d)
				}
				var name, down, by string
				if err := c.QueryRow(context.Background(), "SELECT name, down_sql, applied_by FROM schemahook_history WHERE version = 2").Scan(&name, &down, &by); err != nil {
					t.Fatal(err)
				}
				wantBy := cmp.Or(tc.appliedBy, "integration-test")
				if name != "edge" || down != tc.down || by != wantBy {
					t.Errorf("history row: name %q, applied_by %q (want %q), down_sql\n%q\nwant\n%q", name, by, wantBy, down, tc.down)
				}
			case fails:
				if err == nil {
					t.Fatal("update succeeded, want an error")
				}
				if tc.file != errors.Is(err, pgdriver.ErrMigrationFailed) {
					t.Errorf("error %v: is a migration failure %t, want %t", err, !tc.file, tc.file)
				}
				if tc.file {
					tc.want = append(tc.want, "000002_edge.up.sql", "still at version 1, clean")
				} else if strings.Contains(err.Error(), "failed at line") {
					t.Errorf("error %q blames a line of the file for an error in recording it", err)
				}
				if after := fingerprint(t, c); after != before {
					t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
				}
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not say %q", err, w)
				}
			}
			if tableExists(t, c, "injected") {
				t.Error("SQL from the down file ran")
			}
			if got := historyVersions(t, c); tc.outcome == fails && !slices.Equal(got, []int{1}) {
				t.Errorf("history = %v, want [1]", got)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// With standard_conforming_strings off a backslash in a string literal is an escape, so the
// rows cannot be written as literals: every migration takes two round trips, with parameters,
// and its down SQL is stored exactly. That holds for an initial install too, which otherwise
// sends both migrations in one query: 2×2 round trips instead of one.
func TestStandardConformingStringsOff(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	files := map[string]string{
		"000001_a.up.sql": "CREATE TABLE a (id int);", "000001_a.down.sql": `DROP TABLE a; -- \' it's \\`,
		"000002_b.up.sql": "CREATE TABLE b (id int);", "000002_b.down.sql": `DROP TABLE b; -- \`,
	}
	dir := writeDir(t, files)
	run := func(params map[string]string) (int, *pgx.Conn) {
		db := pgtest.New(t)
		r, rt := countedRunner(t, db, dir, pgdriver.Options{}, params)
		if _, err := r.Update(ctx); err != nil {
			t.Fatalf("update with %v: %v", params, err)
		}
		return rt.count(), db.Conn(t)
	}
	on, _ := run(nil)
	off, c := run(map[string]string{"standard_conforming_strings": "off"})
	if off-on != 3 {
		t.Errorf("with standard_conforming_strings off the update took %d round trips, on %d: want 3 more (two per migration instead of one for both)", off, on)
	}
	rows, _ := c.Query(ctx, "SELECT version, down_sql FROM schemahook_history ORDER BY version")
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		V    int
		Down string
	}])
	if err != nil || len(got) != 2 || got[0].Down != files["000001_a.down.sql"] || got[1].Down != files["000002_b.down.sql"] {
		t.Fatalf("history = %+v, %v", got, err)
	}
}
