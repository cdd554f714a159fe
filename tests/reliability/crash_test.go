package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultSeed makes every run of the crash test use the same migrations and kill schedule;
// SCHEMAHOOK_RELIABILITY_SEED replays another one (the seed is printed in the log).
const defaultSeed = 20240917

func seedFromEnv(t *testing.T) uint64 {
	if s := os.Getenv("SCHEMAHOOK_RELIABILITY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SCHEMAHOOK_RELIABILITY_SEED=%q: %v", s, err)
		}
		return n
	}
	return defaultSeed
}

// crashMig is one generated migration and what it leaves in the database once applied.
type crashMig struct {
	version int
	table   string  // table created (with rows rows), or ""
	rows    int     //
	column  string  // column added to ledger, or ""
	index   string  // index created on ledger, or ""
	add     int     // added to counter.n
	sleep   float64 // seconds of pg_sleep in the middle of the transaction
}

// genCrashMigrations builds n migrations: the first creates ledger and counter; each one after
// it records itself in ledger and randomly creates a table with rows, adds a column to an
// older table, builds an index, updates existing data, and sleeps in the middle so that kills
// land inside open transactions, between statements that already did work.
func genCrashMigrations(rng *rand.Rand, n int) ([]crashMig, map[string]string) {
	migs := []crashMig{{version: 1}}
	files := map[string]string{
		"000001_ledger.up.sql": "CREATE TABLE ledger (version int PRIMARY KEY);\nCREATE TABLE counter (n bigint NOT NULL);\n" +
			"INSERT INTO counter VALUES (0);\nINSERT INTO ledger VALUES (1);\n",
		"000001_ledger.down.sql": "DROP TABLE counter;\nDROP TABLE ledger;\n",
	}
	for v := 2; v <= n; v++ {
		m := crashMig{version: v}
		stmts := []string{fmt.Sprintf("INSERT INTO ledger VALUES (%d)", v)}
		var down []string
		if rng.IntN(2) == 0 {
			m.table, m.rows = fmt.Sprintf("m_%d", v), 1+rng.IntN(500)
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, payload text NOT NULL)", m.table),
				fmt.Sprintf("INSERT INTO %s SELECT g, md5(g::text) FROM generate_series(1, %d) g", m.table, m.rows))
			down = append(down, "DROP TABLE "+m.table)
		}
		if rng.IntN(5) < 2 {
			m.column = fmt.Sprintf("c_%d", v)
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE ledger ADD COLUMN %s int NOT NULL DEFAULT %d", m.column, v))
			down = append(down, "ALTER TABLE ledger DROP COLUMN "+m.column)
		}
		if rng.IntN(10) < 3 {
			m.index = fmt.Sprintf("ix_%d", v)
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX %s ON ledger ((version * %d))", m.index, v))
			down = append(down, "DROP INDEX "+m.index)
		}
		if rng.IntN(2) == 0 {
			m.add = v
			stmts = append(stmts, fmt.Sprintf("UPDATE counter SET n = n + %d", v))
			down = append(down, fmt.Sprintf("UPDATE counter SET n = n - %d", v))
		}
		if v%3 == 0 || rng.IntN(4) == 0 {
			m.sleep = 0.05 + float64(rng.IntN(21))/100 // 0.05–0.25 s
			mid := 1 + rng.IntN(len(stmts))
			stmts = slices.Insert(stmts, mid, fmt.Sprintf("SELECT pg_sleep(%.2f)", m.sleep))
		}
		down = append(down, fmt.Sprintf("DELETE FROM ledger WHERE version = %d", v))
		slices.Reverse(down[:len(down)-1])
		base := fmt.Sprintf("%06d_step_%d", v, v)
		files[base+".up.sql"] = strings.Join(stmts, ";\n") + ";\n"
		files[base+".down.sql"] = strings.Join(down, ";\n") + ";\n"
		migs = append(migs, m)
	}
	return migs, files
}

// crashState is what the database holds, read in one snapshot.
type crashState struct {
	version int
	dirty   bool
	history []int
	tables  []string // user tables besides schemahook's own
	columns []string // ledger's columns
	indexes []string // ix_* indexes
	ledger  []int
	counter int64
	rows    map[string]int
}

func (s crashState) String() string {
	return fmt.Sprintf("version=%d dirty=%t history=%v tables=%v columns=%v indexes=%v ledger=%v counter=%d rows=%v",
		s.version, s.dirty, s.history, s.tables, s.columns, s.indexes, s.ledger, s.counter, s.rows)
}

// expectedState is exactly the objects and data of migrations ≤ v, and history rows 1..v.
func expectedState(migs []crashMig, v int) crashState {
	s := crashState{version: v, rows: map[string]int{}}
	if v < 1 {
		return s
	}
	s.history, s.ledger = seq(1, v), seq(1, v)
	s.tables = []string{"counter", "ledger"}
	s.columns = []string{"version"}
	for _, m := range migs[:v] {
		if m.table != "" {
			s.tables = append(s.tables, m.table)
			s.rows[m.table] = m.rows
		}
		if m.column != "" {
			s.columns = append(s.columns, m.column)
		}
		if m.index != "" {
			s.indexes = append(s.indexes, m.index)
		}
		s.counter += int64(m.add)
	}
	sort.Strings(s.tables)
	sort.Strings(s.columns)
	sort.Strings(s.indexes)
	return s
}

func readCrashState(t *testing.T, c *pgx.Conn) crashState {
	t.Helper()
	ctx := context.Background()
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	s := crashState{version: -1, rows: map[string]int{}}
	strs := func(sql string) []string {
		rows, _ := tx.Query(ctx, sql)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return out
	}
	ints := func(sql string) []int {
		rows, _ := tx.Query(ctx, sql)
		out, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return out
	}
	all := strs("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	for _, tb := range all {
		switch tb {
		case "schema_migrations":
			var n int
			var v int64
			if err := tx.QueryRow(ctx, "SELECT count(*), coalesce(max(version), -1), coalesce(bool_or(dirty), false) FROM schema_migrations").Scan(&n, &v, &s.dirty); err != nil {
				t.Fatal(err)
			}
			if n > 1 {
				t.Fatalf("schema_migrations has %d rows", n)
			}
			s.version = int(v)
		case "schemahook_history":
			s.history = ints("SELECT version::int FROM schemahook_history ORDER BY 1")
		default:
			s.tables = append(s.tables, tb)
		}
	}
	if slices.Contains(s.tables, "ledger") {
		s.columns = strs("SELECT attname::text FROM pg_attribute WHERE attrelid = 'ledger'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY 1")
		s.ledger = ints("SELECT version FROM ledger ORDER BY 1")
	}
	s.indexes = strs(`SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'ix\_%' ORDER BY 1`)
	if slices.Contains(s.tables, "counter") {
		if err := tx.QueryRow(ctx, "SELECT n FROM counter").Scan(&s.counter); err != nil {
			t.Fatal(err)
		}
	}
	for _, tb := range s.tables {
		if strings.HasPrefix(tb, "m_") {
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tb}.Sanitize()).Scan(&n); err != nil {
				t.Fatal(err)
			}
			s.rows[tb] = n
		}
	}
	return s
}

// waitForBackends polls until no session of role is left in the database and returns how long
// that took. A SIGKILLed hook leaves its backend behind until PostgreSQL notices the dead
// client; only then is the state final (a commit already sent may still land) and the
// migration lock free.
func waitForBackends(t *testing.T, c *pgx.Conn, role string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = $1", role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			rows, _ := c.Query(context.Background(), "SELECT pid, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity WHERE usename = $1", role)
			vals, _ := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
			t.Fatalf("the killed hook's backend is still there after %s: %v", limit, vals)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSIGKILLAtRandomMoments runs the real binary over generated migrations and kills it with
// SIGKILL at seeded random moments, at least 100 times. After every kill the database must be
// at some version v, clean, holding exactly the objects and rows of migrations ≤ v and history
// rows 1..v; the next run continues from there, and every round ends at head.
//
// Each round starts with an initial install of an empty schema, killed once at a moment
// anywhere within an install's duration: it runs as one transaction, so it leaves nothing or
// everything. Then the round goes on from version 1 as upgrades, one transaction per
// migration (--commit migration: an upgrade that commits all or nothing is an install's case
// again), killed until head is reached, so that kills land all along the sequence.
func TestSIGKILLAtRandomMoments(t *testing.T) {
	const (
		migrations = 24
		wantKills  = 100
		// Longer than start-up plus the slowest migration (so every migration can be passed),
		// far shorter than a full run (so kills land all along the sequence).
		maxDelay = 500 * time.Millisecond
		// On a slow machine start-up alone may eat the window: after every kill that made no
		// progress the window grows by this much, so each round still reaches head.
		widen    = 100 * time.Millisecond
		maxKills = 1000 // fail rather than loop: something keeps the rerun from progressing
	)
	seed := seedFromEnv(t)
	t.Logf("seed %d (SCHEMAHOOK_RELIABILITY_SEED=%d reproduces these migrations and kill delays)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	migs, files := genCrashMigrations(rng, migrations)
	dir := writeDir(t, files)
	db := newDB(t)
	admin := connect(t, db.AdminURL)
	ctx := context.Background()
	env := migrationsEnv(dir)
	args := []string{"update", "--wait-for-db", "10s", "--lock-wait", "30s", "--timeout", "60s", "--commit", "migration"}

	var (
		kills, rounds int
		killedAt      = map[int]int{} // version observed after a kill → count
		installKills  = map[int]int{} // the same, for kills of an initial install
		orphanWaits   []time.Duration
		delays        []time.Duration
		started       = time.Now()
	)
	resetSchema := func() {
		if _, err := admin.Exec(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION "+db.Role); err != nil {
			t.Fatal(err)
		}
	}
	// killAt starts an update, kills it after delay and checks that the database is a clean
	// prefix; it returns the version found and whether the run was still going when killed.
	killAt := func(delay time.Duration) (int, bool) {
		t.Helper()
		p := start(t, db.URL, env, args...)
		delays = append(delays, delay)
		time.Sleep(delay) // the random kill moment
		p.assertArgsClean()
		killed := p.kill()
		orphanWaits = append(orphanWaits, waitForBackends(t, admin, db.Role, 15*time.Second))
		st := readCrashState(t, admin)
		if want := expectedState(migs, st.version); st.dirty || st.String() != want.String() {
			t.Fatalf("after a kill (round %d, kill %d) the database is not a clean prefix:\n got  %s\n want %s\nstderr of the killed run:\n%s",
				rounds, kills, st, want, p.res.stderr)
		}
		if !killed && (p.res.code != exitOK || st.version != migrations) {
			// It finished before the kill: it must have succeeded and reached head.
			t.Fatalf("unkilled run: exit %d at version %d\n%s", p.res.code, st.version, p.res.stderr)
		}
		return st.version, killed
	}
	// How long an initial install takes, start-up included: its kills are spread over that.
	resetSchema()
	install := run(t, db.URL, env, args...)
	if install.code != exitOK {
		t.Fatalf("initial install: exit %d\n%s", install.code, install.stderr)
	}
	installWindow := install.elapsed * 5 / 4
	first := map[string]string{"000001_ledger.up.sql": files["000001_ledger.up.sql"], "000001_ledger.down.sql": files["000001_ledger.down.sql"]}
	firstEnv := migrationsEnv(writeDir(t, first))
	for ; kills < wantKills; rounds++ {
		// Each round starts from an empty schema, with an initial install: all or nothing.
		resetSchema()
		v, killed := killAt(time.Duration(rng.Int64N(int64(installWindow))))
		if v != -1 && v != migrations {
			t.Fatalf("a killed initial install left version %d: want nothing or everything (%d)", v, migrations)
		}
		if killed {
			kills++
			killedAt[v]++
			installKills[v]++
		}
		// Unless it got through, the round goes on as upgrades from version 1.
		if v != migrations {
			if r := run(t, db.URL, firstEnv, args...); r.code != exitOK {
				t.Fatalf("update to version 1: exit %d\n%s", r.code, r.stderr)
			}
			window, last := maxDelay, -2
			for {
				if kills == maxKills {
					t.Fatalf("%d kills without finishing round %d (at version %d)", kills, rounds, last)
				}
				if v, killed = killAt(time.Duration(rng.Int64N(int64(window)))); !killed {
					break
				}
				kills++
				killedAt[v]++
				if v == migrations {
					break
				}
				if v == last {
					window += widen
				} else {
					window, last = maxDelay, v
				}
			}
		}
		// The round converged; one more run is a no-op that says so.
		r := run(t, db.URL, env, args...)
		if r.code != exitOK || !strings.Contains(r.messages(), "schema is current") {
			t.Fatalf("rerun at head: exit %d\n%s", r.code, r.stderr)
		}
	}

	versions := make([]int, 0, len(killedAt))
	for v := range killedAt {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	var dist []string
	for _, v := range versions {
		dist = append(dist, fmt.Sprintf("%d:%d", v, killedAt[v]))
	}
	slices.Sort(orphanWaits)
	slices.Sort(delays)
	t.Logf("kill delays after start: min %s, median %s, max %s", delays[0].Round(time.Millisecond),
		delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
	t.Logf("%d SIGKILLs in %d rounds over %d migrations in %s; version observed after each kill (version:count, -1 = nothing applied): %s",
		kills, rounds, migrations, time.Since(started).Round(time.Millisecond), strings.Join(dist, " "))
	t.Logf("initial installs (%s each, unkilled) killed %d times: nothing applied %d, everything %d",
		install.elapsed.Round(time.Millisecond), installKills[-1]+installKills[migrations], installKills[-1], installKills[migrations])
	t.Logf("killed hook's backend gone after: median %s, p90 %s, max %s",
		orphanWaits[len(orphanWaits)/2].Round(time.Millisecond), orphanWaits[len(orphanWaits)*9/10].Round(time.Millisecond),
		orphanWaits[len(orphanWaits)-1].Round(time.Millisecond))
	// The kills must have landed all over the sequence, not only before the first or after
	// the last migration: otherwise the test proved little.
	if len(killedAt) < migrations/3 {
		t.Errorf("kills observed only %d distinct versions, want at least %d", len(killedAt), migrations/3)
	}
	if installKills[-1] == 0 {
		t.Error("no kill landed inside an initial install")
	}
}
