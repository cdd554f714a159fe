package integration

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// appliedLines returns the versions of the "applied migration" lines of a text log, in order,
// with their durations.
func appliedLines(t testing.TB, log string) ([]int, []time.Duration) {
	t.Helper()
	var vs []int
	var ds []time.Duration
	for _, m := range appliedRE.FindAllStringSubmatch(log, -1) {
		var v int
		fmt.Sscan(m[1], &v)
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("log line with duration %q: %v", m[2], err)
		}
		vs, ds = append(vs, v), append(ds, d)
	}
	return vs, ds
}

var appliedRE = regexp.MustCompile(`msg="applied migration" version=(\d+) name=\S+ duration=(\S+)`)

// loggedRunner is countedRunner whose log is kept too.
func loggedRunner(t testing.TB, db *pgtest.DB, dir string, opts pgdriver.Options) (*runner.Runner, *roundTrips, *clitest.Buffer) {
	t.Helper()
	logs := &clitest.Buffer{}
	l := slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, rt := countedRunner(t, db, dir, opts, nil, runner.WithLogger(l))
	return r, rt, logs
}

// ensureTables creates schemahook's tables, as the first update does before migrating: the
// state a failed first install must leave behind.
func ensureTables(t testing.TB, db *pgtest.DB, dir string) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	d, err := pgdriver.New(ctx, db.Conn(t), load(t, dir), pgdriver.Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.EnsureTables(); err != nil {
		t.Fatal(err)
	}
}

// An initial install sends its transactional migrations in one query: the round trips do not
// grow with their number, and every version and history row is what one transaction per
// migration would have committed, each migration's duration its own.
func TestInitialInstallIsOneQuery(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	files := func(n int) map[string]string {
		f := tableFiles(n)
		f["000003_t3.up.sql"] = "CREATE TABLE t3 (id int);\nSELECT pg_sleep(0.25);\n"
		return f
	}
	install := func(n int) (*pgtest.DB, int, string, string) {
		t.Helper()
		db := pgtest.New(t)
		dir := writeDir(t, files(n))
		r, rt, logs := loggedRunner(t, db, dir, pgdriver.Options{})
		if res, err := r.Update(ctx); err != nil || len(res.Applied) != n || !res.Initialized {
			t.Fatalf("install of %d: %+v, %v", n, res, err)
		}
		return db, rt.count(), logs.String(), dir
	}
	_, rt10, _, _ := install(10)
	db, rt60, logs, dir := install(60)
	t.Logf("round trips: 10 migrations %d, 60 migrations %d", rt10, rt60)
	if rt60 != rt10 {
		t.Errorf("installing 60 migrations took %d round trips, 10 took %d: want the same (one query for all)", rt60, rt10)
	}
	if rt10 > 12 {
		t.Errorf("installing 10 migrations took %d round trips, want a small constant", rt10)
	}

	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 60 || dirty {
		t.Fatalf("version (%d, %t), want (60, false)", v, dirty)
	}
	type row struct {
		Version      int
		Name         string
		Checksum     string
		Down         *string
		DownNoTx     bool
		Irreversible bool
		AppliedBy    string
		DurationMS   float64
		Retries      int
	}
	rows, _ := c.Query(ctx, `SELECT version, name, checksum, down_sql, down_no_transaction, irreversible, applied_by, duration_ms, retries
		FROM schemahook_history ORDER BY version`)
	hist, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil || len(hist) != 60 {
		t.Fatalf("history: %d rows, %v", len(hist), err)
	}
	cat := load(t, dir)
	for _, h := range hist {
		m := cat.Lookup(uint(h.Version))
		down, err := m.Down()
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != m.Name || h.Checksum != m.Checksum || h.Down == nil || *h.Down != down.SQL || h.DownNoTx || h.Irreversible ||
			h.AppliedBy != "integration-test" || h.Retries != 0 || h.DurationMS <= 0 {
			t.Errorf("history row %+v does not match %s (down_sql %q)", h, m.Up.Name, down.SQL)
		}
		// Migration 3 sleeps 250ms: that is its own time, not its neighbours'.
		if slow := h.Version == 3; slow != (h.DurationMS >= 250) || h.DurationMS > 5000 {
			t.Errorf("version %d recorded %.3f ms; want ≥ 250 for the one that sleeps 250ms only", h.Version, h.DurationMS)
		}
	}
	// One log line per migration, after the commit, with the duration its history row holds.
	vs, ds := appliedLines(t, logs)
	if !slices.Equal(vs, seq(1, 60)) {
		t.Fatalf("applied migration lines for versions %v, want 1..60", vs)
	}
	for i, d := range ds {
		if want := time.Duration(hist[i].DurationMS * float64(time.Millisecond)).Round(time.Microsecond); d != want {
			t.Errorf("version %d logged %s, its history row says %s", i+1, d, want)
		}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// A failure anywhere in an initial install's transaction rolls back every migration of it:
// the database is left as the first update leaves it before migrating — its tables, no
// version — and the error names the failing file and says so. Nothing is logged as applied,
// and the fixed install runs through.
func TestInitialInstallFailureRollsBackEverything(t *testing.T) {
	good := map[string]string{}
	for v := 1; v <= 6; v++ {
		if v == 4 {
			continue
		}
		good[fmt.Sprintf("%06d_m%d.up.sql", v, v)] = fmt.Sprintf("CREATE TABLE m%d (id int PRIMARY KEY);\nINSERT INTO m%d VALUES (%d);\n", v, v, v)
		good[fmt.Sprintf("%06d_m%d.down.sql", v, v)] = fmt.Sprintf("DROP TABLE m%d;\n", v)
	}
	good["000004_bad.down.sql"] = "DROP TABLE IF EXISTS t4;\n"
	rolledBack := []string{"nothing of migrations 1–6 was applied", "still at no version (empty), clean"}
	cases := []struct {
		name string
		up   string
		file bool     // the error is the file's (a MigrationError naming 000004_bad.up.sql)
		want []string // besides rolledBack
	}{
		{name: "error without a position", file: true, up: "CREATE TABLE t4 (id int);\nINSERT INTO t4 VALUES (1);\n  ALTER TABLE missing ADD COLUMN x int;\n",
			want: []string{"000004_bad.up.sql failed at line 3 ", "SQLSTATE 42P01", `relation "missing" does not exist`}},
		{name: "error with a position", file: true, up: "CREATE TABLE t4 (id int);\nSELECT 'ünï', nope FROM t4;\n",
			want: []string{"000004_bad.up.sql failed at line 2, column 15", "SQLSTATE 42703"}},
		{name: "syntax error", file: true, up: "CREATE TABLE t4 (id int);\nCREATE TABLE t5 (id int NOT NUL);\n",
			want: []string{"000004_bad.up.sql failed at line 2, column 29", "SQLSTATE 42601"}},
		{name: "unfinished last statement", file: true, up: "CREATE TABLE t4 (id int);\nCREATE TABLE t5 (id int",
			want: []string{"000004_bad.up.sql failed at line 2, column 24", "SQLSTATE 42601", "the file's last statement is unfinished"}},
		{name: "error in its version row", up: "CREATE FUNCTION no_versions() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no version rows today'; END $$;\n" +
			"CREATE TRIGGER no_versions BEFORE INSERT ON schema_migrations FOR EACH ROW EXECUTE FUNCTION no_versions();\n",
			want: []string{"recording version 4: ", "no version rows today"}},
		{name: "error at COMMIT", up: "CREATE TABLE p4 (id int PRIMARY KEY);\nCREATE TABLE c4 (p int REFERENCES p4 DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO c4 VALUES (1);\n",
			want: []string{"committing migrations 1–6: ", "violates foreign key constraint"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t, time.Minute)
			files := maps.Clone(good)
			files["000004_bad.up.sql"] = tc.up
			dir := writeDir(t, files)
			db := pgtest.New(t)
			ensureTables(t, db, dir)
			c := db.Conn(t)
			before := pgtest.Fingerprint(t, c)
			r, rt, logs := loggedRunner(t, db, dir, pgdriver.Options{})
			res, err := r.Update(ctx)
			if err == nil {
				t.Fatal("update succeeded, want an error")
			}
			if tc.file != errors.Is(err, pgdriver.ErrMigrationFailed) {
				t.Errorf("error %v: is a migration failure %t, want %t", err, !tc.file, tc.file)
			}
			for _, w := range append(tc.want, rolledBack...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !tc.file && strings.Contains(err.Error(), "failed at line") {
				t.Errorf("error %q blames a line of a file for an error in recording", err)
			}
			if after := pgtest.Fingerprint(t, c); after != before {
				t.Errorf("the database changed:\nbefore\n%s\nafter\n%s", before, after)
			}
			if res.To != pgdriver.NilVersion || len(res.Applied) != 0 {
				t.Errorf("result %+v, want nothing applied", res)
			}
			if vs, _ := appliedLines(t, logs.String()); len(vs) != 0 {
				t.Errorf("logged versions %v as applied; the transaction was rolled back", vs)
			}
			// The file was sent once, with the whole group: one query, no retry.
			if n := strings.Count(rt.sentText(), tc.up); n != 1 {
				t.Errorf("the failing file was sent %d times, want once", n)
			}

			// The install can simply be run again once the file is fixed.
			files["000004_bad.up.sql"] = "CREATE TABLE t4 (id int);\n"
			res, err = newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx)
			if err != nil || !slices.Equal(res.Applied, []uint{1, 2, 3, 4, 5, 6}) {
				t.Fatalf("update after the fix: %+v, %v", res, err)
			}
			if v, dirty := versionRow(t, c); v != 6 || dirty || !slices.Equal(historyVersions(t, c), seq(1, 6)) {
				t.Fatalf("after the fix: version (%d, %t), history %v", v, dirty, historyVersions(t, c))
			}
		})
	}
}

// A no-transaction migration splits an initial install: what comes before it commits first, it
// runs outside any transaction, and a failure after it rolls back only the transaction after it.
func TestInitialInstallSplitsAtNoTransaction(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	files := map[string]string{
		"000001_a.up.sql": "CREATE TABLE a (id int PRIMARY KEY);\n", "000001_a.down.sql": "DROP TABLE a;\n",
		"000002_b.up.sql": "CREATE TABLE b (id int);\n", "000002_b.down.sql": "DROP TABLE b;\n",
		"000003_idx.up.sql":   "-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY b_id_idx ON b (id);\n",
		"000003_idx.down.sql": "-- schemahook:no-transaction\nDROP INDEX CONCURRENTLY b_id_idx;\n",
		"000004_d.up.sql":     "CREATE TABLE d (id int);\n", "000004_d.down.sql": "DROP TABLE d;\n",
		"000005_e.up.sql": "CREATE TABLE e (id int);\nINSERT INTO e VALUES (1);\nUPDATE nope SET x = 1;\n", "000005_e.down.sql": "DROP TABLE e;\n",
	}
	db := pgtest.New(t)
	r, _, logs := loggedRunner(t, db, writeDir(t, files), pgdriver.Options{})
	res, err := r.Update(ctx)
	if !errors.Is(err, pgdriver.ErrMigrationFailed) {
		t.Fatalf("update: %v, want a migration failure", err)
	}
	for _, w := range []string{"000005_e.up.sql failed at line 3, column 8", "SQLSTATE 42P01", "nothing of migrations 4–5 was applied", "still at version 3, clean"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if res.To != 3 || !slices.Equal(res.Applied, []uint{1, 2, 3}) {
		t.Errorf("result %+v, want to=3 applied=[1 2 3]", res)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 3 || dirty || !slices.Equal(historyVersions(t, c), []int{1, 2, 3}) {
		t.Fatalf("version (%d, %t), history %v; want (3, false), [1 2 3]", v, dirty, historyVersions(t, c))
	}
	var valid bool
	if err := c.QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'b_id_idx'::regclass").Scan(&valid); err != nil || !valid {
		t.Errorf("index b_id_idx valid=%t, %v", valid, err)
	}
	if !tableExists(t, c, "a") || tableExists(t, c, "d") || tableExists(t, c, "e") {
		t.Errorf("tables a %t, d %t, e %t: want only what migrations 1–3 created", tableExists(t, c, "a"), tableExists(t, c, "d"), tableExists(t, c, "e"))
	}
	if vs, _ := appliedLines(t, logs.String()); !slices.Equal(vs, []int{1, 2, 3}) {
		t.Errorf("logged versions %v as applied, want [1 2 3]", vs)
	}
}

// With CommitEach (--commit migration) an upgrade keeps one transaction, and one round trip,
// per migration: a failure in the third pending migration leaves the two before it applied,
// and each migration before the failing one costs one round trip.
func TestUpgradeCommitsEachMigration(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	base := map[string]string{"000001_base.up.sql": "CREATE TABLE base (id int);\n", "000001_base.down.sql": "DROP TABLE base;\n"}
	// upgrade brings a new database to version 1, then runs an update with n good migrations
	// and a failing one after them.
	upgrade := func(n int) (*pgx.Conn, int, error) {
		t.Helper()
		db := pgtest.New(t)
		if _, err := newRunner(t, db, writeDir(t, base), pgdriver.Options{}).Update(ctx); err != nil {
			t.Fatal(err)
		}
		files := maps.Clone(base)
		for v := 2; v <= n+1; v++ {
			files[fmt.Sprintf("%06d_u%d.up.sql", v, v)] = fmt.Sprintf("CREATE TABLE u%d (id int);\n", v)
			files[fmt.Sprintf("%06d_u%d.down.sql", v, v)] = fmt.Sprintf("DROP TABLE u%d;\n", v)
		}
		bad := n + 2
		files[fmt.Sprintf("%06d_bad.up.sql", bad)] = "CREATE TABLE bad (id int);\nALTER TABLE missing ADD COLUMN x int;\n"
		files[fmt.Sprintf("%06d_bad.down.sql", bad)] = "DROP TABLE bad;\n"
		r, rt := countedRunner(t, db, writeDir(t, files), pgdriver.Options{CommitEach: true}, nil)
		_, err := r.Update(ctx)
		return db.Conn(t), rt.count(), err
	}
	c, rt2, err := upgrade(2)
	if !errors.Is(err, pgdriver.ErrMigrationFailed) || !strings.Contains(err.Error(), "000004_bad.up.sql failed at line 2") ||
		!strings.Contains(err.Error(), "still at version 3, clean") || strings.Contains(err.Error(), "nothing of") {
		t.Fatalf("error = %v, want 000004_bad.up.sql failing with version 3 left, clean", err)
	}
	if v, dirty := versionRow(t, c); v != 3 || dirty || !slices.Equal(historyVersions(t, c), []int{1, 2, 3}) || !tableExists(t, c, "u3") || tableExists(t, c, "bad") {
		t.Fatalf("version (%d, %t), history %v: want (3, false), [1 2 3], with u3 and without bad", v, dirty, historyVersions(t, c))
	}
	_, rt5, err := upgrade(5)
	if !errors.Is(err, pgdriver.ErrMigrationFailed) || !strings.Contains(err.Error(), "still at version 6, clean") {
		t.Fatalf("error = %v, want version 6 left, clean", err)
	}
	t.Logf("round trips: 2 migrations then a failing one %d; 5 then a failing one %d", rt2, rt5)
	if rt5-rt2 != 3 {
		t.Errorf("3 more migrations before the failing one took %d more round trips, want 3 (one per migration)", rt5-rt2)
	}
}

// A lock timeout in an initial install retries the whole transaction; the retries and the time
// spent waiting are recorded for the migration that waited, and the others record only their
// own time.
func TestInitialInstallRetriesLockTimeouts(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	db := pgtest.New(t)
	holder := db.Conn(t)
	// A table that no migration created (another tool's), held by a long transaction.
	if _, err := holder.Exec(ctx, "CREATE TABLE legacy (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "BEGIN; SELECT * FROM legacy;"); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n",
		"000002_alter.up.sql": "ALTER TABLE legacy ADD COLUMN note text;\n", "000002_alter.down.sql": "ALTER TABLE legacy DROP COLUMN note;\n",
		"000003_c.up.sql": "CREATE TABLE c (id int);\n", "000003_c.down.sql": "DROP TABLE c;\n",
	}
	r, _, logs := loggedRunner(t, db, writeDir(t, files), pgdriver.Options{LockTimeout: 100 * time.Millisecond})
	done := make(chan error, 1)
	go func() { _, err := r.Update(ctx); done <- err }()
	time.Sleep(1500 * time.Millisecond)
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("update: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("update did not finish after the holder ended")
	}
	c := db.Conn(t)
	rows, _ := c.Query(ctx, "SELECT version::int, retries, duration_ms FROM schemahook_history ORDER BY version")
	type row struct {
		Version, Retries int
		MS               float64
	}
	hist, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil || len(hist) != 3 {
		t.Fatalf("history %+v, %v", hist, err)
	}
	if hist[1].Retries < 2 || hist[1].MS < 1000 || hist[0].Retries != 0 || hist[2].Retries != 0 || hist[0].MS > 500 || hist[2].MS > 500 {
		t.Errorf("history %+v: want retries and the ~1.5s wait on version 2 only", hist)
	}
	if !strings.Contains(logs.String(), `msg="lock not available, retrying" version=2`) {
		t.Errorf("no retry logged for version 2:\n%s", logs)
	}
	if vs, _ := appliedLines(t, logs.String()); !slices.Equal(vs, []int{1, 2, 3}) {
		t.Errorf("applied lines for %v, want [1 2 3]", vs)
	}
}

// Plan says that an empty database is initialized in one transaction per run of transactional
// migrations, split at no-transaction ones, that an upgrade does the same by default, and that
// with CommitEach it commits each migration.
func TestPlanShowsInitialInstallTransactions(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	db := pgtest.New(t)
	files := exampleFiles(t) // 1, 2 transactional; 3 no-transaction; 4, 5 transactional
	dir := writeDir(t, files)
	var b strings.Builder
	if err := newRunner(t, db, dir, pgdriver.Options{}).Plan(ctx, &b); err != nil {
		t.Fatal(err)
	}
	plan := b.String()
	for _, w := range []string{"consecutive transactional migrations run as ONE transaction", "-- migrations 1–2 run in this one transaction", "-- migrations 4–5 run in this one transaction"} {
		if !strings.Contains(plan, w) {
			t.Errorf("plan lacks %q:\n%s", w, plan)
		}
	}
	if n := strings.Count(plan, "\nBEGIN;"); n != 2 {
		t.Errorf("plan has %d BEGINs, want 2 (one per transaction):\n%s", n, plan)
	}
	// At version 1, 2 is a group of its own (3 follows), 4–5 one transaction.
	if _, err := newRunner(t, db, writeDir(t, upTo(files, 1)), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := newRunner(t, db, dir, pgdriver.Options{}).Plan(ctx, &b); err != nil {
		t.Fatal(err)
	}
	plan = b.String()
	if n := strings.Count(plan, "\nBEGIN;"); n != 2 || !strings.Contains(plan, "the pending migrations commit all or nothing") ||
		!strings.Contains(plan, "-- migrations 4–5 run in this one transaction") {
		t.Errorf("upgrade plan has %d BEGINs, want 2 (2 alone, then 4–5 in one transaction), and says all or nothing:\n%s", n, plan)
	}
	// With CommitEach each pending transactional migration is its own transaction.
	b.Reset()
	if err := newRunner(t, db, dir, pgdriver.Options{CommitEach: true}).Plan(ctx, &b); err != nil {
		t.Fatal(err)
	}
	plan = b.String()
	if n := strings.Count(plan, "\nBEGIN;"); n != 3 || strings.Contains(plan, "ONE transaction") || !strings.Contains(plan, "each migration commits in its own transaction") {
		t.Errorf("per-migration upgrade plan has %d BEGINs, want 3 (one per transactional migration), and no word of one transaction:\n%s", n, plan)
	}
}

// A lock timeout in an upgrade that commits all or nothing retries the whole group: while the
// holder keeps the lock, nothing of the group is visible (the database stays at version 1),
// and once it lets go the group lands; only the migration that waited records retries.
func TestUpgradeGroupRetriesLockTimeouts(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	db := pgtest.New(t)
	files := map[string]string{
		"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n",
		"000002_b.up.sql": "CREATE TABLE b (id int);\n", "000002_b.down.sql": "DROP TABLE b;\n",
		"000003_alter.up.sql": "ALTER TABLE a ADD COLUMN note text;\n", "000003_alter.down.sql": "ALTER TABLE a DROP COLUMN note;\n",
		"000004_d.up.sql": "CREATE TABLE d (id int);\n", "000004_d.down.sql": "DROP TABLE d;\n",
	}
	if _, err := newRunner(t, db, writeDir(t, upTo(files, 1)), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	holder := db.Conn(t)
	if _, err := holder.Exec(ctx, "BEGIN; SELECT * FROM a;"); err != nil {
		t.Fatal(err)
	}
	r, _, logs := loggedRunner(t, db, writeDir(t, files), pgdriver.Options{LockTimeout: 100 * time.Millisecond})
	done := make(chan error, 1)
	go func() { _, err := r.Update(ctx); done <- err }()
	time.Sleep(1500 * time.Millisecond)
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 1 || dirty || tableExists(t, c, "b") {
		t.Errorf("while migration 3 waits: version (%d, %t), table b exists %t; want (1, false) and no b", v, dirty, tableExists(t, c, "b"))
	}
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("update: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("update did not finish after the holder ended")
	}
	rows, _ := c.Query(ctx, "SELECT version::int, retries FROM schemahook_history ORDER BY version")
	type row struct{ Version, Retries int }
	hist, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil || len(hist) != 4 {
		t.Fatalf("history %+v, %v", hist, err)
	}
	if hist[2].Retries < 2 || hist[1].Retries != 0 || hist[3].Retries != 0 {
		t.Errorf("history %+v: want retries on version 3 only", hist)
	}
	for _, w := range []string{`msg="applying migrations in one transaction" migrations="migrations 2–4"`, `msg="lock not available, retrying" version=3`} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %s:\n%s", w, logs)
		}
	}
	if vs, _ := appliedLines(t, logs.String()); !slices.Equal(vs, []int{2, 3, 4}) {
		t.Errorf("applied lines for %v, want [2 3 4]", vs)
	}
}
