package integration

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/pgtest"
)

func TestInitializesEmptyDatabase(t *testing.T) {
	db := pgtest.New(t)
	dir := writeDir(t, exampleFiles(t))
	res, err := newRunner(t, db, dir, pgdriver.Options{}).Update(ctxT(t, time.Minute))
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if !res.Initialized || res.From != -1 || res.To != 5 || !slices.Equal(res.Applied, []uint{1, 2, 3, 4, 5}) {
		t.Fatalf("result = %+v, want initialized from -1 to 5 applying 1..5", res)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 5 || dirty {
		t.Fatalf("schema_migrations = (%d, %t), want (5, false)", v, dirty)
	}
	for _, tbl := range []string{"accounts", "projects", "account_settings"} {
		if !tableExists(t, c, tbl) {
			t.Errorf("table %s missing", tbl)
		}
	}
	// The no-transaction migration built its index CONCURRENTLY, and it is valid.
	var valid bool
	if err := c.QueryRow(context.Background(), `SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_lower_key'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("index accounts_email_lower_key valid=%t err=%v", valid, err)
	}
	// History: one row per migration, with the file's checksum and its down SQL.
	cat := load(t, dir)
	rows, _ := c.Query(context.Background(), "SELECT version, name, checksum, down_sql FROM schemahook_history ORDER BY version")
	type h struct {
		Version  int
		Name     string
		Checksum string
		DownSQL  *string
	}
	hist, err := pgx.CollectRows(rows, pgx.RowToStructByPos[h])
	if err != nil || len(hist) != 5 {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	for _, row := range hist {
		m := cat.Lookup(uint(row.Version))
		down, err := m.Down()
		if err != nil {
			t.Fatal(err)
		}
		if m.Checksum != row.Checksum || m.Name != row.Name || row.DownSQL == nil || *row.DownSQL != down.SQL {
			t.Errorf("history row %d = %+v does not match file %s", row.Version, row, m.Up.Name)
		}
	}
}

func TestUpgradeAppliesOnlyPendingAndNoOpWritesNothing(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, db, writeDir(t, upTo(files, 2)), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatalf("update to 2: %v", err)
	}
	c := db.Conn(t)
	var appliedAt1 time.Time
	if err := c.QueryRow(ctx, "SELECT applied_at FROM schemahook_history WHERE version = 1").Scan(&appliedAt1); err != nil {
		t.Fatal(err)
	}
	full := writeDir(t, files)
	res, err := newRunner(t, db, full, pgdriver.Options{}).Update(ctx)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if res.Initialized || res.From != 2 || res.To != 5 || !slices.Equal(res.Applied, []uint{3, 4, 5}) {
		t.Fatalf("upgrade result = %+v, want 2 → 5 applying 3,4,5", res)
	}
	var again time.Time
	if err := c.QueryRow(ctx, "SELECT applied_at FROM schemahook_history WHERE version = 1").Scan(&again); err != nil || !again.Equal(appliedAt1) {
		t.Fatalf("history of version 1 rewritten: %v → %v (%v)", appliedAt1, again, err)
	}

	// No-op: the row versions (xmin) of both tables stay the same — nothing was written.
	snapshot := func() string {
		var s string
		err := c.QueryRow(ctx, `SELECT (SELECT string_agg(xmin::text, ',') FROM schema_migrations) || '/' ||
			(SELECT string_agg(xmin::text, ',' ORDER BY version) FROM schemahook_history)`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	res, err = newRunner(t, db, full, pgdriver.Options{}).Update(ctx)
	if err != nil || len(res.Applied) != 0 || res.From != 5 || res.To != 5 {
		t.Fatalf("no-op update = %+v, %v", res, err)
	}
	if after := snapshot(); after != before {
		t.Fatalf("no-op update wrote rows: %s → %s", before, after)
	}
}

// A failing migration in the middle of an upgrade leaves nothing of the upgrade by default:
// the release's pending migrations commit all or nothing, so the database stays at the
// version the previous release left, clean — even the statements of the failing file that
// succeeded before the failing one are gone. With CommitEach (--commit migration) the
// migrations before the failing one stay committed. Either way the next update, with the
// file fixed, continues from where the database is.
// (On an empty database the whole install rolls back: TestInitialInstallFailureRollsBackEverything.)
func TestFailureMidSequenceLeavesPreviousVersionClean(t *testing.T) {
	for _, tc := range []struct {
		name       string
		commitEach bool
		left       int    // the version the failure leaves
		says       string // what the error says about it
	}{
		{"release", false, 1, "nothing of migrations 2–4 was applied (an update commits its pending migrations all or nothing): the database is still at version 1, clean"},
		{"migration", true, 2, "the database is still at version 2, clean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := pgtest.New(t)
			files := map[string]string{
				"000001_a.up.sql": "CREATE TABLE a (id int);", "000001_a.down.sql": "DROP TABLE a;",
				"000002_b.up.sql": "CREATE TABLE b (id int);", "000002_b.down.sql": "DROP TABLE b;",
				"000003_c.up.sql":   "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\n  ALTER TABLE missing ADD COLUMN x int;\n",
				"000003_c.down.sql": "DROP TABLE c;",
				"000004_d.up.sql":   "CREATE TABLE d (id int);", "000004_d.down.sql": "DROP TABLE d;",
			}
			opts := pgdriver.Options{CommitEach: tc.commitEach}
			if _, err := newRunner(t, db, writeDir(t, upTo(files, 1)), opts).Update(ctxT(t, time.Minute)); err != nil {
				t.Fatal(err)
			}
			res, err := newRunner(t, db, writeDir(t, files), opts).Update(ctxT(t, time.Minute))
			if !errors.Is(err, pgdriver.ErrMigrationFailed) {
				t.Fatalf("update error = %v, want ErrMigrationFailed", err)
			}
			for _, want := range []string{"000003_c.up.sql failed at line 3 ", "SQLSTATE 42P01", `relation "missing" does not exist`, tc.says} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			var applied []uint
			for v := 2; v <= tc.left; v++ {
				applied = append(applied, uint(v))
			}
			if res.To != tc.left || !slices.Equal(res.Applied, applied) {
				t.Errorf("result = %+v, want to=%d applied=%v", res, tc.left, applied)
			}
			c := db.Conn(t)
			if v, dirty := versionRow(t, c); v != tc.left || dirty {
				t.Fatalf("schema_migrations = (%d, %t), want (%d, false)", v, dirty, tc.left)
			}
			if tableExists(t, c, "b") != tc.commitEach || tableExists(t, c, "c") || tableExists(t, c, "d") {
				t.Fatalf("table b exists: %t, want %t; tables of the failed migration (c) or after it (d) must not exist", tableExists(t, c, "b"), tc.commitEach)
			}
			wantHistory := []int{1}
			for v := 2; v <= tc.left; v++ {
				wantHistory = append(wantHistory, v)
			}
			if got := historyVersions(t, c); !slices.Equal(got, wantHistory) {
				t.Fatalf("history = %v, want %v", got, wantHistory)
			}
			// Fix the file; the next update continues from where the database is.
			files["000003_c.up.sql"] = "CREATE TABLE c (id int);"
			res, err = newRunner(t, db, writeDir(t, files), opts).Update(ctxT(t, time.Minute))
			if err != nil || res.From != tc.left || res.To != 4 {
				t.Fatalf("update after fix = %+v, %v", res, err)
			}
		})
	}
}

// A no-transaction migration splits an upgrade's all-or-nothing group: what comes before it
// commits before it runs, so a failure after it leaves the database at the no-transaction
// migration's version, clean, with nothing of the group after it.
func TestUpgradeGroupSplitsAtNoTransactionMigration(t *testing.T) {
	db := pgtest.New(t)
	files := map[string]string{
		"000001_a.up.sql": "CREATE TABLE a (id int);", "000001_a.down.sql": "DROP TABLE a;",
		"000002_b.up.sql": "CREATE TABLE b (id int);", "000002_b.down.sql": "DROP TABLE b;",
		"000003_idx.up.sql":   "-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
		"000003_idx.down.sql": "-- schemahook:no-transaction\nDROP INDEX CONCURRENTLY a_id;\n",
		"000004_c.up.sql":     "CREATE TABLE c (id int);", "000004_c.down.sql": "DROP TABLE c;",
		"000005_d.up.sql": "CREATE TABLE d (id int);\nALTER TABLE missing ADD COLUMN x int;\n", "000005_d.down.sql": "DROP TABLE d;",
	}
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, db, writeDir(t, upTo(files, 1)), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx)
	if !errors.Is(err, pgdriver.ErrMigrationFailed) || !strings.Contains(err.Error(), "nothing of migrations 4–5 was applied") ||
		!strings.Contains(err.Error(), "still at version 3, clean") {
		t.Fatalf("update error = %v, want 000005_d.up.sql failing with nothing of migrations 4–5 applied, version 3 left, clean", err)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 3 || dirty || res.To != 3 || !slices.Equal(res.Applied, []uint{2, 3}) {
		t.Fatalf("version (%d, %t), result %+v: want (3, false), applied [2 3]", v, dirty, res)
	}
	if !tableExists(t, c, "b") || tableExists(t, c, "c") || tableExists(t, c, "d") {
		t.Fatal("want table b (committed before the no-transaction migration) and neither c nor d")
	}
	if got := historyVersions(t, c); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("history = %v, want [1 2 3]", got)
	}
}

// A migration that needs a lock held by a long transaction times out after lock_timeout, rolls
// back, retries with backoff, and lands once the holder is gone; readers of the table are not
// queued behind it for longer than about the lock timeout.
func TestLockTimeoutRetriesUntilTheHolderEnds(t *testing.T) {
	db := pgtest.New(t)
	files := map[string]string{
		"000001_t.up.sql": "CREATE TABLE t (id int); INSERT INTO t VALUES (1);", "000001_t.down.sql": "DROP TABLE t;",
	}
	ctx := ctxT(t, 2*time.Minute)
	if _, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	holder := db.Conn(t)
	if _, err := holder.Exec(ctx, "BEGIN; SELECT * FROM t;"); err != nil { // ACCESS SHARE until COMMIT
		t.Fatal(err)
	}
	files["000002_alter.up.sql"] = "ALTER TABLE t ADD COLUMN note text;"
	files["000002_alter.down.sql"] = "ALTER TABLE t DROP COLUMN note;"
	done := make(chan error, 1)
	r := newRunner(t, db, writeDir(t, files), pgdriver.Options{LockTimeout: 100 * time.Millisecond})
	go func() { _, err := r.Update(ctx); done <- err }()

	// While the migration keeps retrying, readers still get through quickly.
	reader := db.Conn(t)
	deadline := time.Now().Add(2 * time.Second)
	var worst time.Duration
	for time.Now().Before(deadline) {
		start := time.Now()
		if _, err := reader.Exec(ctx, "SELECT count(*) FROM t"); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("update finished while the lock was held: %v", err)
	default:
	}
	if worst > time.Second {
		t.Errorf("a reader waited %v behind the queued ALTER, want well under 1s (lock_timeout 100ms)", worst)
	}
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("update after the holder ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("update did not finish after the holder ended")
	}
	c := db.Conn(t)
	var retries int
	var ms float64
	if err := c.QueryRow(ctx, "SELECT retries, duration_ms FROM schemahook_history WHERE version = 2").Scan(&retries, &ms); err != nil {
		t.Fatal(err)
	}
	if retries < 2 {
		t.Fatalf("history records %d retries, want several (the lock was held ~2s with lock_timeout 100ms)", retries)
	}
	// The duration is the whole migration's, its failed attempts and waits included.
	if ms < 1500 {
		t.Errorf("history records a duration of %.1f ms, want the ~2s the migration waited and retried", ms)
	}
	t.Logf("reader worst latency %v; migration retried %d times", worst, retries)
}

func TestRefusesDriftNewerAndDirty(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, db, writeDir(t, upTo(files, 3)), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	c := db.Conn(t)

	t.Run("drift", func(t *testing.T) {
		edited := exampleFiles(t)
		edited["000002_create_projects.up.sql"] += "\n-- edited after it was applied\n"
		_, err := newRunner(t, db, writeDir(t, edited), pgdriver.Options{}).Update(ctx)
		if !errors.Is(err, runner.ErrDrift) || !strings.Contains(err.Error(), "000002_create_projects.up.sql: file changed after it was applied") {
			t.Fatalf("error = %v, want drift naming 000002_create_projects.up.sql", err)
		}
		delete(edited, "000002_create_projects.up.sql")
		delete(edited, "000002_create_projects.down.sql")
		_, err = newRunner(t, db, writeDir(t, edited), pgdriver.Options{}).Update(ctx)
		if !errors.Is(err, runner.ErrDrift) || !strings.Contains(err.Error(), "file is missing") {
			t.Fatalf("error = %v, want drift for the missing file", err)
		}
	})
	t.Run("newer", func(t *testing.T) {
		_, err := newRunner(t, db, writeDir(t, upTo(files, 2)), pgdriver.Options{}).Update(ctx)
		if !errors.Is(err, runner.ErrDatabaseNewer) || !strings.Contains(err.Error(), "at version 3 but this release only knows migrations up to 2") {
			t.Fatalf("error = %v, want database newer", err)
		}
	})
	t.Run("dirty", func(t *testing.T) {
		if _, err := c.Exec(ctx, "UPDATE schema_migrations SET dirty = true"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = c.Exec(context.Background(), "UPDATE schema_migrations SET dirty = false") })
		_, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx)
		if !errors.Is(err, runner.ErrDirty) || !strings.Contains(err.Error(), "schemahook force 3") {
			t.Fatalf("error = %v, want dirty with a force hint", err)
		}
	})
	// None of the refusals changed anything.
	if v, dirty := versionRow(t, c); v != 3 || dirty {
		t.Fatalf("schema_migrations = (%d, %t), want (3, false)", v, dirty)
	}
	if tableExists(t, c, "account_settings") {
		t.Fatal("a refused update applied migration 5")
	}
}

// Only no-transaction files can leave the version dirty, and `force` recovers it.
func TestNoTransactionFailureIsDirtyAndForceRecovers(t *testing.T) {
	db := pgtest.New(t)
	files := map[string]string{
		"000001_t.up.sql": "CREATE TABLE t (id int);", "000001_t.down.sql": "DROP TABLE t;",
		"000002_idx.up.sql":   "-- schemahook:no-transaction\nCREATE TABLE side (id int);\nCREATE INDEX CONCURRENTLY t_id_idx ON nope (id);\n",
		"000002_idx.down.sql": "-- schemahook:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_id_idx;\nDROP TABLE IF EXISTS side;\n",
	}
	ctx := ctxT(t, time.Minute)
	_, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx)
	if !errors.Is(err, pgdriver.ErrMigrationFailed) || !strings.Contains(err.Error(), "DIRTY at version 2") ||
		!strings.Contains(err.Error(), "failed at line 3") || !strings.Contains(err.Error(), "schemahook force 1") {
		t.Fatalf("error = %v, want a dirty failure at line 3 with force advice", err)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 2 || !dirty {
		t.Fatalf("schema_migrations = (%d, %t), want (2, true)", v, dirty)
	}
	if !tableExists(t, c, "side") {
		t.Fatal("the statement before the failure should have been kept (no transaction)")
	}
	// The operator undoes the partial change and forces the previous version.
	if _, err := c.Exec(ctx, "DROP TABLE side"); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, db, writeDir(t, files), pgdriver.Options{})
	if err := r.Force(ctx, 1); err != nil {
		t.Fatalf("force 1: %v", err)
	}
	if v, dirty := versionRow(t, c); v != 1 || dirty {
		t.Fatalf("after force: (%d, %t), want (1, false)", v, dirty)
	}
	files["000002_idx.up.sql"] = "-- schemahook:no-transaction\nCREATE TABLE side (id int);\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n"
	if _, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatalf("update after recovery: %v", err)
	}
	if v, dirty := versionRow(t, c); v != 2 || dirty {
		t.Fatalf("after recovery: (%d, %t), want (2, false)", v, dirty)
	}

	// A no-transaction file whose first statement fails changed nothing: version stays clean.
	files["000003_x.up.sql"] = "-- schemahook:no-transaction\nALTER TABLE nope ADD COLUMN y int;\nCREATE INDEX CONCURRENTLY t2 ON t (id);\n"
	files["000003_x.down.sql"] = "-- schemahook:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t2;\n"
	_, err = newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx)
	if !errors.Is(err, pgdriver.ErrMigrationFailed) || !strings.Contains(err.Error(), "still at version 2, clean") {
		t.Fatalf("error = %v, want a clean failure", err)
	}
	if v, dirty := versionRow(t, c); v != 2 || dirty {
		t.Fatalf("after first-statement failure: (%d, %t), want (2, false)", v, dirty)
	}
}

// A database migrated by golang-migrate's own pgx/v5 driver is adopted as is, and afterwards
// golang-migrate still reads the version schemahook wrote.
func TestAdoptsGolangMigrateDatabase(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	dir := writeDir(t, upTo(files, 2))
	migrateUp := func() (uint, bool) {
		t.Helper()
		src, err := iofs.New(os.DirFS(dir), ".")
		if err != nil {
			t.Fatal(err)
		}
		sqlDB := stdlib.OpenDB(*mustParse(t, db.URL))
		defer sqlDB.Close()
		drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			t.Fatalf("golang-migrate up: %v", err)
		}
		v, dirty, err := m.Version()
		if err != nil {
			t.Fatal(err)
		}
		return v, dirty
	}
	if v, dirty := migrateUp(); v != 2 || dirty {
		t.Fatalf("golang-migrate left (%d, %t)", v, dirty)
	}
	res, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctxT(t, time.Minute))
	if err != nil || !res.Adopted || res.From != 2 || !slices.Equal(res.Applied, []uint{3, 4, 5}) {
		t.Fatalf("adopting update = %+v, %v", res, err)
	}
	c := db.Conn(t)
	var adopted int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM schemahook_history WHERE applied_by LIKE 'adopted by %'").Scan(&adopted); err != nil || adopted != 2 {
		t.Fatalf("adopted history rows = %d (%v), want 2", adopted, err)
	}
	// golang-migrate reads schemahook's version row (its own files stop at 2, so it reports 5 as
	// the database version without touching it).
	sqlDB := stdlib.OpenDB(*mustParse(t, db.URL))
	defer sqlDB.Close()
	drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if v, dirty, err := drv.Version(); err != nil || v != 5 || dirty {
		t.Fatalf("golang-migrate reads (%d, %t, %v), want (5, false)", v, dirty, err)
	}
}

func mustParse(t testing.TB, url string) *pgx.ConnConfig {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
