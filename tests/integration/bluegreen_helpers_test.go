package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/bluegreen"
	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// bgSite is a base database for the copy strategy, with the copies and the lineage database
// made from it dropped when the test ends.
type bgSite struct {
	t    *testing.T
	db   *pgtest.DB
	base string
	url  string // the role the engine runs as (default: the test server's superuser)
}

func newBGSite(t *testing.T) *bgSite {
	db := pgtest.New(t)
	s := &bgSite{t: t, db: db, base: db.Name, url: db.URL}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, s.adminURL("postgres"))
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer c.Close(ctx)
		rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, s.base+"__")
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Errorf("cleanup: dropping %s: %v", n, err)
			}
		}
		// The base's freeze is a per-database setting, dropped with it by pgtest.
	})
	return s
}

// adminURL is the test server's superuser URL on database.
func (s *bgSite) adminURL(database string) string { return withDB(s.db.URL, database) }

func withDB(raw, database string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + database
	return u.String()
}

// name is the copy of version v.
func (s *bgSite) name(v int) string { return fmt.Sprintf("%s__v%d", s.base, v) }

// with runs fn on a new superuser connection to database, closed afterwards: a connection left
// open on a source would be ended by the copy (CREATE DATABASE … TEMPLATE needs none).
func (s *bgSite) with(database string, fn func(c *pgx.Conn)) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.adminURL(database))
	if err != nil {
		s.t.Fatalf("connecting to %s: %v", database, err)
	}
	defer c.Close(context.Background())
	fn(c)
}

// engine is the copy strategy with the example migrations up to version head, switching to the
// copy named for head, as the hook runs it.
func (s *bgSite) engine(head int, o bluegreen.Options) *bluegreen.Engine {
	s.t.Helper()
	return s.engineAs(s.url, head, o)
}

func (s *bgSite) engineAs(roleURL string, head int, o bluegreen.Options) *bluegreen.Engine {
	s.t.Helper()
	return s.engineLogging(roleURL, head, o, testLogger(s.t))
}

func (s *bgSite) engineLogging(roleURL string, head int, o bluegreen.Options, log *slog.Logger) *bluegreen.Engine {
	s.t.Helper()
	cfg, err := dbconn.Config(withDB(roleURL, s.base))
	if err != nil {
		s.t.Fatal(err)
	}
	cat := load(s.t, writeDir(s.t, upTo(exampleFiles(s.t), head)))
	runnerOn := func(database string) *runner.Runner {
		c := cfg.Copy()
		c.Database = database
		return runner.New(c, cat, runner.WithLogger(testLogger(s.t)), runner.WithDriverOptions(pgdriver.Options{AppliedBy: "integration-test"}))
	}
	o.Base, o.Version = s.base, head
	if o.Target == "" {
		o.Target = s.name(head)
	}
	hooks := bluegreen.Hooks{
		Validate: func(ctx context.Context, database string) error {
			_, err := runnerOn(database).Pending(ctx)
			return err
		},
		Migrate: func(ctx context.Context, database string) error { _, err := runnerOn(database).Update(ctx); return err },
	}
	return bluegreen.New(cfg, o, hooks, log)
}

// activate runs the engine for head and fails the test on error.
func (s *bgSite) activate(head int, o bluegreen.Options) bluegreen.Result {
	s.t.Helper()
	res, err := s.engine(head, o).Activate(ctxT(s.t, 2*time.Minute))
	if err != nil {
		s.t.Fatalf("activate v%d: %v", head, err)
	}
	return res
}

// databases lists the databases of this site (base, copies, lineage), sorted.
func (s *bgSite) databases() []string {
	s.t.Helper()
	var names []string
	s.with("postgres", func(c *pgx.Conn) {
		rows, _ := c.Query(context.Background(), `SELECT datname FROM pg_database WHERE datname = $1 OR starts_with(datname, $1 || '__') ORDER BY 1`, s.base)
		var err error
		if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			s.t.Fatal(err)
		}
	})
	return names
}

// frozen reports whether database is read-only by default for new sessions.
func (s *bgSite) frozen(database string) bool {
	s.t.Helper()
	var ro string
	s.with(database, func(c *pgx.Conn) {
		if err := c.QueryRow(context.Background(), `SHOW default_transaction_read_only`).Scan(&ro); err != nil {
			s.t.Fatal(err)
		}
	})
	return ro == "on"
}

// serving returns the database the lineage says serves.
func (s *bgSite) serving() string {
	s.t.Helper()
	var name string
	s.with(bluegreen.DefaultLineage(s.base), func(c *pgx.Conn) {
		if err := c.QueryRow(context.Background(), `SELECT name FROM schemahook_copies WHERE serving`).Scan(&name); err != nil {
			s.t.Fatal(err)
		}
	})
	return name
}

// write inserts n accounts into database through a fresh session, and makes sure its statistics
// are flushed before returning, as a session that ended would.
func (s *bgSite) write(database string, n int) error {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.adminURL(database))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for i := 0; i < n; i++ {
		if _, err := c.Exec(ctx, `INSERT INTO accounts (email) VALUES ($1)`, fmt.Sprintf("w%d-%d@example.com", time.Now().UnixNano(), i)); err != nil {
			return err
		}
	}
	_, err = c.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	return err
}

// contents describes each user table of database: its row count and an md5 of its rows in
// primary-key order — equal contents, equal data.
func contents(t testing.TB, c *pgx.Conn) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, _ := c.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var n int64
		var sum string
		if err := c.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '') FROM `+tb+` r`).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		out[tb] = fmt.Sprintf("%d rows %s", n, sum)
	}
	return out
}

// seed fills the example schema with some rows.
func seed(t testing.TB, c *pgx.Conn, accounts int) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Exec(ctx, `INSERT INTO accounts (email, name) SELECT 'a' || g || '@example.com', repeat('x', g % 50) FROM generate_series(1, $1) g`, accounts); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO projects (account_id, title) SELECT id, 'p' || id FROM accounts`); err != nil {
		t.Fatal(err)
	}
}

func mustContain(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// engineFor is the engine of a release whose database is target, at version head.
func (s *bgSite) engineFor(target string, head int) *bluegreen.Engine {
	return s.engine(head, bluegreen.Options{Target: target})
}
