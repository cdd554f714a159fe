package integration

// schemahook next to golang-migrate's real CLI (the version tests/go.mod pins, built with its
// pgx v5 driver): the two exclude each other through the migration lock in either order, a
// migration the CLI is running is never taken for a failed one, and every state the CLI leaves
// is read the same way by status, check, update, guard and the downgrade path. Each test runs
// with golang-migrate's default table and with x-migrations-table (schemahook's
// --migrations-table and --history-table).

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/jackc/pgx/v5"
)

// gatedFiles record in runs which session ran each migration; 2 waits at the gate, so that the
// second tool starts, and is seen waiting, while the first is in the middle of it.
func gatedFiles(g *gate) map[string]string {
	return map[string]string{
		"000001_runs.up.sql":   "CREATE TABLE runs (version int NOT NULL, app text NOT NULL DEFAULT current_setting('application_name'));\nINSERT INTO runs (version) VALUES (1);\n",
		"000001_runs.down.sql": "DROP TABLE runs;\n",
		"000002_slow.up.sql":   "INSERT INTO runs (version) VALUES (2);\n" + g.sql(),
		"000002_slow.down.sql": "DELETE FROM runs WHERE version = 2;\n",
		"000003_last.up.sql":   "INSERT INTO runs (version) VALUES (3);\n",
		"000003_last.down.sql": "DELETE FROM runs WHERE version = 3;\n",
	}
}

// `migrate up` and `schemahook update` started one while the other is in a slow migration, in
// both orders: the second waits for the first, each migration is applied exactly once, by the
// first, and both exit 0.
func TestMigrateCLIAndUpdateExcludeEachOther(t *testing.T) {
	for _, tb := range tableVariants[:2] {
		for _, cliFirst := range []bool{true, false} {
			name := tb.name + map[bool]string{true: ", migrate up first", false: ", schemahook update first"}[cliFirst]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p := newPair(t, tb)
				g := p.closedGate()
				dir := writeDir(t, gatedFiles(g))
				// schemahook's lock timeout would cut the wait at the gate short.
				update := []string{"update", "--lock-wait", "60s", "--lock-timeout", "60s"}
				var first, second *running
				if cliFirst {
					first = p.startMigrate(dir, nil, "up")
					p.within("migrate up waiting at the gate in migration 2", func() bool { return g.waiting() || first.exited() })
					if v, dirty := p.versionRow(); v != 2 || !dirty {
						t.Errorf("in migration 2, the CLI's version row is (%d, %t), want (2, true)", v, dirty)
					}
					second = p.startSchemahook(dir, update...)
					p.within("schemahook waiting for the migration lock", func() bool {
						return strings.Contains(second.err.String(), "waiting for the migration lock") || second.exited()
					})
				} else {
					first = p.startSchemahook(dir, update...)
					p.within("schemahook waiting at the gate in migration 2", func() bool { return g.waiting() || first.exited() })
					if n := p.lockedBy("schemahook"); n != 2 {
						t.Errorf("schemahook holds %d advisory locks besides the gate, want 2: the key of golang-migrate's WithInstance and the migrate CLI's", n)
					}
					second = p.startMigrate(dir, nil, "up")
					// The CLI waits in pg_advisory_lock, as every golang-migrate driver does.
					p.within("migrate up waiting for its lock", func() bool { return p.advisoryWaiters() == 2 || second.exited() })
				}
				if first.exited() || second.exited() {
					t.Errorf("%s (exited %t) and %s (exited %t) did not both wait while migration 2 ran", first.name, first.exited(), second.name, second.exited())
				}
				g.open()
				a, b := first.wait(t, time.Minute), second.wait(t, time.Minute)
				if a.Code != exitOK || b.Code != exitOK {
					t.Fatalf("%s: exit %d; %s: exit %d; want both 0", first.name, a.Code, second.name, b.Code)
				}
				hook := map[bool]finished{true: b, false: a}[cliFirst]
				if cliFirst {
					if !strings.Contains(hook.Stderr, "the migrate CLI") {
						t.Errorf("schemahook's wait does not name the migrate CLI:\n%s", hook.Stderr)
					}
				} else if !strings.Contains(b.Stderr, "no change") {
					t.Errorf("migrate up after schemahook's update: want \"no change\":\n%s", b.Stderr)
				}
				noDirtyAdvice(t, "schemahook update", hook.Result)

				rows, _ := p.c.Query(context.Background(), "SELECT version, count(*)::int, bool_and(split_part(app, ' ', 1) = 'schemahook') FROM runs GROUP BY 1 ORDER BY 1")
				got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
					var v, n int
					var bySchemahook bool
					err := r.Scan(&v, &n, &bySchemahook)
					by := map[bool]string{true: "schemahook", false: "migrate"}[bySchemahook]
					return fmt.Sprintf("%d×%d by %s", v, n, by), err
				})
				if err != nil {
					t.Fatal(err)
				}
				by := map[bool]string{true: "migrate", false: "schemahook"}[cliFirst]
				if want := []string{"1×1 by " + by, "2×1 by " + by, "3×1 by " + by}; !slices.Equal(got, want) {
					t.Errorf("runs = %v, want %v (each migration exactly once, by the tool that started first)", got, want)
				}
				p.at(3, false)
				p.historyIs(1, 2, 3)
			})
		}
	}
}

// While the migrate CLI runs a migration — its dirty mark committed, its lock held — schemahook
// never calls the database dirty or advises force: update waits for the lock, naming the CLI,
// and exits 7 after --lock-wait; check says a migration is in progress (exit 8, and --wait
// keeps waiting until it ends); status says migrating; guard waits like update.
func TestMigrateCLIMigrationInProgress(t *testing.T) {
	for _, tb := range tableVariants[:2] {
		t.Run(tb.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, tb)
			g := p.closedGate()
			files := map[string]string{
				"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n",
				"000002_slow.up.sql": g.sql() + "CREATE TABLE slow (id int);\n", "000002_slow.down.sql": "DROP TABLE slow;\n",
			}
			v1, v2 := p.release(files, 1, nil), p.release(files, 2, nil)
			p.code("update to 1", p.schemahook(v1, "update"), exitOK)

			cli := p.startMigrate(v2, nil, "up")
			p.eventually("migrate up waiting at the gate in migration 2", 30*time.Second, func() bool { return g.waiting() || cli.exited() })
			p.at(2, true)
			gateCheck := p.startSchemahook(v2, "check", "--wait", "60s")

			start := time.Now()
			r := p.schemahook(v2, "update", "--lock-wait", "1s")
			p.code("update while migrate runs", r, exitTimeout, "waiting for the migration lock", "a migration is in progress", "the migrate CLI", "--lock-wait")
			if took := time.Since(start); took < time.Second {
				t.Errorf("update gave up after %s, before --lock-wait 1s", took)
			}
			noDirtyAdvice(t, "update", r)

			r = p.schemahook(v2, "check")
			p.code("check while migrate runs", r, exitNotCurrent, "a migration is in progress", "the migrate CLI")
			noDirtyAdvice(t, "check", r)

			s := decodeStatus(t, p.schemahook(v2, "status", "-o", "json").Stdout)
			if s.State != "migrating" || s.Dirty || s.Current == nil || *s.Current != 2 || !strings.Contains(s.Message, "a migration is in progress") ||
				strings.Contains(s.Message, "force") || strings.Contains(s.Message, "dirty") {
				t.Errorf("status while migrate runs = %+v; want state migrating, not dirty, saying a migration is in progress", s)
			}
			r = p.schemahook(v2, "status")
			p.code("status (table)", r, exitOK, "State:     migrating")
			noDirtyAdvice(t, "status", r)

			r = p.schemahook(v1, "guard", "--lock-wait", "1s")
			p.code("guard while migrate runs", r, exitTimeout, "a migration is in progress")
			noDirtyAdvice(t, "guard", r)

			if cli.exited() {
				t.Fatal("migrate up ended before the checks: they did not see a migration in progress")
			}
			g.open()
			p.code("migrate up", cli.wait(t, time.Minute).Result, exitOK)
			gc := gateCheck.wait(t, time.Minute)
			p.code("check --wait", gc.Result, exitOK, "a migration is in progress", "schema is current")
			noDirtyAdvice(t, "check --wait", gc.Result)

			p.expect(p.look(v2), "current", 2, []int{1}, nil)
			p.code("update", p.schemahook(v2, "update"), exitOK, "recording history for migrations applied by another tool")
			p.historyIs(1, 2)
		})
	}
}

// Every state the migrate CLI leaves behind is read consistently by status, check (see look),
// update, guard and the downgrade path (update and guard with --allow-downgrade).
func TestMigrateCLIStatesReadConsistently(t *testing.T) {
	type sequence struct {
		name string
		run  func(p *pair, files map[string]string)
	}
	sequences := []sequence{
		{"up N", func(p *pair, files map[string]string) {
			rel2, full := p.release(files, 2, nil), p.release(files, 4, nil)
			p.code("migrate up 1", p.migrate(full, nil, "up", "1"), exitOK)
			p.expect(p.look(rel2), "pending", 1, nil, []int{2})
			p.code("update to 2", p.schemahook(rel2, "update"), exitOK, "recording history for migrations applied by another tool")
			p.historyIs(1, 2)
			p.code("migrate up 1", p.migrate(full, nil, "up", "1"), exitOK)
			p.at(3, false)
			// 3 was applied by the CLI: applied, though the history has no row for it yet.
			p.expect(p.look(full), "pending", 3, []int{1, 2}, []int{4})
			p.code("guard of a release at 3", p.schemahook(p.release(files, 3, nil), "guard"), exitOK)
			p.code("guard of a release at 2", p.schemahook(rel2, "guard"), exitNewer, "rollback was stopped")
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.at(4, false)
			p.historyIs(1, 2, 3, 4)
			p.expect(p.look(full), "current", 4, []int{1, 2, 3, 4}, nil)
			p.code("guard --allow-downgrade to 2", p.schemahook(rel2, "guard", "--allow-downgrade"), exitOK, "schema downgraded")
			p.at(2, false)
		}},
		{"down N", func(p *pair, files map[string]string) { downN(p, files, false) }},
		{"down N before the trigger", func(p *pair, files map[string]string) { downN(p, files, true) }},
		{"down all", func(p *pair, files map[string]string) {
			full := p.release(files, 4, nil)
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.code("migrate down -all", p.migrate(full, nil, "down", "-all"), exitOK)
			p.at(-1, false)
			p.historyIs()
			p.expect(p.look(full), "empty", -1, nil, []int{1, 2, 3, 4})
			p.code("update", p.schemahook(full, "update"), exitOK, "initializing empty database")
			p.expect(p.look(full), "current", 4, []int{1, 2, 3, 4}, nil)
		}},
		{"goto V", func(p *pair, files map[string]string) {
			rel2, rel3, full := p.release(files, 2, nil), p.release(files, 3, nil), p.release(files, 4, nil)
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.code("migrate goto 2", p.migrate(full, nil, "goto", "2"), exitOK)
			p.at(2, false)
			p.historyIs(1, 2)
			p.expect(p.look(full), "pending", 2, []int{1, 2}, []int{3, 4})
			p.code("guard of a release at 3", p.schemahook(rel3, "guard"), exitOK)
			p.code("migrate goto 4", p.migrate(full, nil, "goto", "4"), exitOK)
			p.expect(p.look(full), "current", 4, []int{1, 2}, nil)
			p.code("update", p.schemahook(full, "update"), exitOK, "recording history for migrations applied by another tool")
			p.historyIs(1, 2, 3, 4)
			p.expect(p.look(full), "current", 4, []int{1, 2, 3, 4}, nil)
			p.code("update --allow-downgrade to 2", p.schemahook(rel2, "update", "--allow-downgrade"), exitOK, "schema downgraded")
			p.at(2, false)
			p.historyIs(1, 2)
		}},
		{"failed migration", func(p *pair, files map[string]string) {
			rel2, full := p.release(files, 2, nil), p.release(files, 4, nil)
			broken := p.release(files, 4, map[string]string{"000003_c.up.sql": "CREATE TABLE c (id int);\nSELECT * FROM nowhere;\n"})
			p.code("update to 2", p.schemahook(rel2, "update"), exitOK)
			p.code("migrate up", p.migrate(broken, nil, "up"), 1)
			p.at(3, true)
			p.expect(p.look(full), "dirty", 3, []int{1, 2}, []int{4})
			p.code("update", p.schemahook(full, "update"), exitDirty, "schemahook force 3")
			p.code("update --allow-downgrade to 2", p.schemahook(rel2, "update", "--allow-downgrade"), exitDirty, "schemahook force 3")
			p.code("guard of a release at 2", p.schemahook(rel2, "guard"), exitDirty, "schemahook force 3")
			p.code("guard --allow-downgrade to 2", p.schemahook(rel2, "guard", "--allow-downgrade"), exitDirty, "schemahook force 3")
			p.at(3, true)
			p.code("migrate force 2", p.migrate(full, nil, "force", "2"), exitOK)
			p.expect(p.look(full), "pending", 2, []int{1, 2}, []int{3, 4})
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.at(4, false)
			p.historyIs(1, 2, 3, 4)
		}},
		{"force V", func(p *pair, files map[string]string) {
			full := p.release(files, 4, nil)
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.code("migrate force 2", p.migrate(full, nil, "force", "2"), exitOK)
			p.historyIs(1, 2)
			p.expect(p.look(full), "pending", 2, []int{1, 2}, []int{3, 4})
			p.code("migrate force 4", p.migrate(full, nil, "force", "4"), exitOK)
			p.expect(p.look(full), "current", 4, []int{1, 2}, nil)
			p.code("update", p.schemahook(full, "update"), exitOK, "recording history for migrations applied by another tool")
			p.historyIs(1, 2, 3, 4)
			p.expect(p.look(full), "current", 4, []int{1, 2, 3, 4}, nil)
		}},
		{"down 1, edit the file, up", func(p *pair, files map[string]string) {
			rel3, full := p.release(files, 3, nil), p.release(files, 4, nil)
			edited := p.release(files, 4, map[string]string{"000004_d.up.sql": "CREATE TABLE d (id int, note text);\n"})
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.code("migrate down 1", p.migrate(full, nil, "down", "1"), exitOK)
			p.code("migrate up", p.migrate(edited, nil, "up"), exitOK)
			p.at(4, false)
			s := p.look(edited)
			p.expect(s, "current", 4, []int{1, 2, 3}, nil)
			if strings.Contains(s.check.Stderr, "drift") || len(s.status.Drift) > 0 {
				p.t.Errorf("a migration the CLI reverted and applied again from an edited file reads as drift: %+v\n%s", s.status.Drift, s.check.Stderr)
			}
			p.code("update", p.schemahook(edited, "update"), exitOK, "recording history for migrations applied by another tool")
			p.historyIs(1, 2, 3, 4)
			s = p.look(edited)
			p.expect(s, "current", 4, []int{1, 2, 3, 4}, nil)
			if len(s.status.Drift) > 0 {
				p.t.Errorf("drift after the update: %+v", s.status.Drift)
			}
			p.code("guard --allow-downgrade to 3", p.schemahook(rel3, "guard", "--allow-downgrade"), exitOK, "schema downgraded")
			p.at(3, false)
			if tableExists(p.t, p.c, "d") {
				p.t.Error("table d survived the downgrade")
			}
		}},
		{"down and up as a role without rights on the history", func(p *pair, files map[string]string) {
			files["000004_d.up.sql"], files["000004_d.down.sql"] = "INSERT INTO a VALUES (4);\n", "DELETE FROM a WHERE id = 4;\n"
			full := p.release(files, 4, nil)
			p.code("update", p.schemahook(full, "update"), exitOK)
			role := p.role("GRANT USAGE ON SCHEMA public TO %[1]s",
				"GRANT SELECT, INSERT, DELETE, TRUNCATE ON "+pgx.Identifier{p.tb.versions}.Sanitize()+", a TO %[1]s")
			p.code("migrate down 1 as the role", p.migrate(full, role, "down", "1"), exitOK)
			p.at(3, false)
			p.historyIs(1, 2, 3)
			p.code("migrate up as the role", p.migrate(full, role, "up"), exitOK)
			p.expect(p.look(full), "current", 4, []int{1, 2, 3}, nil)
			p.code("update", p.schemahook(full, "update"), exitOK)
			p.historyIs(1, 2, 3, 4)
		}},
	}
	for _, tb := range tableVariants {
		for _, sq := range sequences {
			t.Run(tb.name+"/"+sq.name, func(t *testing.T) {
				t.Parallel()
				sq.run(newPair(t, tb), cliFiles())
			})
		}
	}
}

// downN: schemahook applies 1–4, the CLI reverts 4. With legacy, the version table has no
// forget-reverted trigger (a database last migrated by an older schemahook): the history keeps
// the reverted row, which every command must read as not applied.
func downN(p *pair, files map[string]string, legacy bool) {
	t := p.t
	rel1, rel2, rel3, full := p.release(files, 1, nil), p.release(files, 2, nil), p.release(files, 3, nil), p.release(files, 4, nil)
	p.code("update", p.schemahook(full, "update"), exitOK)
	if legacy {
		p.dropTriggers()
	}
	p.code("migrate down 1", p.migrate(full, nil, "down", "1"), exitOK)
	p.at(3, false)
	if legacy {
		p.historyIs(1, 2, 3, 4)
	} else {
		p.historyIs(1, 2, 3)
	}
	p.expect(p.look(full), "pending", 3, []int{1, 2, 3}, []int{4})
	p.code("guard of a release at 3", p.schemahook(rel3, "guard"), exitOK, "rollback is safe")
	p.code("guard of a release at 2", p.schemahook(rel2, "guard"), exitNewer, "rollback was stopped")
	p.code("guard --allow-downgrade to 2", p.schemahook(rel2, "guard", "--allow-downgrade"), exitOK, "schema downgraded")
	p.at(2, false)
	p.historyIs(1, 2)
	if tableExists(t, p.c, "c") {
		t.Error("table c survived the downgrade")
	}
	p.code("update --allow-downgrade to 1", p.schemahook(rel1, "update", "--allow-downgrade"), exitOK, "schema downgraded")
	p.at(1, false)
	p.historyIs(1)
	p.code("update", p.schemahook(full, "update"), exitOK)
	p.expect(p.look(full), "current", 4, []int{1, 2, 3, 4}, nil)
	if legacy {
		// The update gave the version table its trigger: the CLI's next down is followed.
		p.code("migrate down 1", p.migrate(full, nil, "down", "1"), exitOK)
		p.historyIs(1, 2, 3)
	}
}

// dropTriggers drops the version table's triggers: a database last migrated by a schemahook
// that did not create one.
func (p *pair) dropTriggers() {
	p.t.Helper()
	ctx := context.Background()
	rows, _ := p.c.Query(ctx, "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal", pgx.Identifier{p.tb.versions}.Sanitize())
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		p.t.Fatal(err)
	}
	for _, n := range names {
		if _, err := p.c.Exec(ctx, "DROP TRIGGER "+pgx.Identifier{n}.Sanitize()+" ON "+pgx.Identifier{p.tb.versions}.Sanitize()); err != nil {
			p.t.Fatal(err)
		}
	}
}

// role creates a login role for the test, runs grants (with %[1]s for the role) and returns its
// credentials; it is dropped when the test ends.
func (p *pair) role(grants ...string) *url.Userinfo {
	p.t.Helper()
	ctx := context.Background()
	name := "migrator_" + strings.TrimPrefix(p.db.Name, "t_")
	name = name[:min(len(name), 60)]
	password := "pw-" + fmt.Sprint(time.Now().UnixNano())
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := p.c.Exec(ctx, "CREATE ROLE "+ident+" LOGIN PASSWORD '"+password+"'"); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() {
		_, _ = p.c.Exec(context.Background(), "DROP OWNED BY "+ident)
		_, _ = p.c.Exec(context.Background(), "DROP ROLE "+ident)
	})
	for _, g := range grants {
		if _, err := p.c.Exec(ctx, fmt.Sprintf(g, ident)); err != nil {
			p.t.Fatalf("%s: %v", fmt.Sprintf(g, ident), err)
		}
	}
	return url.UserPassword(name, password)
}

// A program that uses golang-migrate as a library, with a driver made by WithInstance (whose
// lock key hashes current_database(), not the URL's path), and schemahook exclude each other
// too, in both directions.
func TestLibraryWithInstanceAndSchemahookExcludeEachOther(t *testing.T) {
	for _, tb := range tableVariants[:2] {
		t.Run(tb.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, tb)
			g := p.closedGate()
			files := cliFiles()
			files["000002_b.up.sql"] = "CREATE TABLE b (id int);\n" + g.sql()
			v1, full := p.release(files, 1, nil), p.release(files, 4, nil)
			p.code("update to 1", p.schemahook(v1, "update"), exitOK)

			db, err := sql.Open("pgx/v5", p.db.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			cfg := &migratepgx.Config{}
			if tb.versions != "schema_migrations" {
				cfg.MigrationsTable = tb.versions
			}
			lib, err := migratepgx.WithInstance(db, cfg)
			if err != nil {
				t.Fatal(err)
			}

			// The library holds its lock: update waits for it, names it, and gives up.
			if err := lib.Lock(); err != nil {
				t.Fatal(err)
			}
			p.code("update while the library holds its lock", p.schemahook(full, "update", "--lock-wait", "1s"), exitTimeout,
				"waiting for the migration lock", "WithInstance")
			p.at(1, false)
			if err := lib.Unlock(); err != nil {
				t.Fatal(err)
			}

			// schemahook holds the lock (waiting at the gate in migration 2): the library's Lock,
			// a blocking pg_advisory_lock, waits until the update is done.
			hook := p.startSchemahook(full, "update", "--lock-timeout", "60s")
			p.within("schemahook waiting at the gate", func() bool { return g.waiting() || hook.exited() })
			locked := make(chan error, 1)
			go func() { locked <- lib.Lock() }()
			p.within("the library waiting for its lock", func() bool { return p.advisoryWaiters() == 2 || hook.exited() })
			select {
			case err := <-locked:
				t.Errorf("the library took its lock while schemahook migrated (err %v)", err)
			default:
			}
			g.open()
			p.code("update", hook.wait(t, time.Minute).Result, exitOK)
			select {
			case err := <-locked:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the library did not get its lock after schemahook's update")
			}
			if v, dirty, err := lib.Version(); err != nil || v != 4 || dirty {
				t.Errorf("the library reads version (%d, %t), %v; want (4, false)", v, dirty, err)
			}
			if err := lib.Unlock(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
