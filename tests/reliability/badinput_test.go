package reliability

import (
	"database/sql"
	"errors"
	"maps"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/schemahook/schemahook/tests/pgtest"
)

var baseFiles = map[string]string{
	"000001_accounts.up.sql":   "CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL);\nINSERT INTO accounts VALUES (1, 'a@example.com'), (2, 'b@example.com');\n",
	"000001_accounts.down.sql": "DROP TABLE accounts;\n",
	"000002_projects.up.sql":   "CREATE TABLE projects (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts);\n",
	"000002_projects.down.sql": "DROP TABLE projects;\n",
}

// with returns baseFiles plus the given files; a file whose body is remove is left out.
func with(files map[string]string) map[string]string {
	out := maps.Clone(baseFiles)
	for k, v := range files {
		if v == "\x00delete" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

const remove = "\x00delete"

// rawAtPassword holds an '@' and a '/' that libpq would read as the end of the user-info and
// the start of the database name, were they not percent-encoded.
var rawAtPassword = "p@ss:w/rd?x#y-" + randomHex(8)

// badCase is one invalid input: what update must answer, and that the database is unchanged.
type badCase struct {
	name  string
	files map[string]string // the migrations directory (nil: baseFiles)
	url   func(db *DB) string
	args  []string
	code  int
	want  []string // substrings of the logged error
	fast  bool     // answered at once, whatever --wait-for-db says
}

// TestBadInputChangesNothing runs update on a database at version 2 with every kind of bad
// input: each must exit with its documented code and a message that says what is wrong, and
// leave the database exactly as it was (schema, data, version and history rows).
func TestBadInputChangesNothing(t *testing.T) {
	db := newDB(t)
	if r := run(t, db.URL, migrationsEnv(writeDir(t, baseFiles)), "update"); r.code != exitOK {
		t.Fatalf("setup: exit %d", r.code)
	}
	admin := connect(t, db.AdminURL)
	before := pgtest.Fingerprint(t, admin)
	closed := closedAddr(t)
	addSecret(t, rawAtPassword)
	cases := []badCase{
		{name: "SQL syntax error", files: with(map[string]string{
			"000003_broken.up.sql":   "CREATE TABLE side (id int);\nINSERT INTO accounts VALUES (3, 'c@example.com');\nALTER TABLE accounts ADD COLUMN x int NOT NUL;\n",
			"000003_broken.down.sql": "DROP TABLE side;\n",
		}), code: exitFailed, want: []string{"000003_broken.up.sql failed at line 3, column", "SQLSTATE 42601", "still at version 2, clean"}},
		{name: "SQL error after statements that worked", files: with(map[string]string{
			"000003_broken.up.sql":   "CREATE TABLE side (id int);\nINSERT INTO accounts VALUES (3, 'c@example.com');\nUPDATE nope SET x = 1;\n",
			"000003_broken.down.sql": "DROP TABLE side;\n",
		}), code: exitFailed, want: []string{"000003_broken.up.sql failed at line 3", "SQLSTATE 42P01", "still at version 2, clean"}},
		{name: "missing down file", files: with(map[string]string{"000003_x.up.sql": "CREATE TABLE x (id int);\n"}),
			code: exitUsage, want: []string{"000003_x.up.sql: missing 000003_x.down.sql", "schemahook:irreversible"}},
		{name: "duplicate versions", files: with(map[string]string{
			"000003_a.up.sql": "SELECT 1;", "000003_a.down.sql": "SELECT 1;", "000003_b.up.sql": "SELECT 1;", "000003_b.down.sql": "SELECT 1;",
		}), code: exitUsage, want: []string{"version 3 is also used by"}},
		{name: "same version spelt twice", files: with(map[string]string{"2_projects.up.sql": "SELECT 1;"}),
			code: exitUsage, want: []string{"duplicate up migration for version 2"}},
		{name: "malformed file names", files: with(map[string]string{
			"3_x.sql": "SELECT 1;", "000004-x.up.sql": "SELECT 1;", "000005_x.UP.sql": "SELECT 1;", "V6__x.sql": "SELECT 1;",
		}), code: exitUsage, want: []string{"3_x.sql: file name must look like", "000004-x.up.sql: file name", "000005_x.UP.sql: file name", "V6__x.sql: file name"}},
		{name: "version too large for the version column", files: with(map[string]string{
			"9223372036854775808_x.up.sql": "SELECT 1;", "9223372036854775808_x.down.sql": "SELECT 1;",
		}), code: exitUsage, want: []string{"9223372036854775808_x.up.sql: version \"9223372036854775808\" is out of range (at most 9223372036854775807"}},
		{name: "unknown directive", files: with(map[string]string{
			"000003_idx.up.sql":   "-- schemahook:no-transactions\nCREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);\n",
			"000003_idx.down.sql": "DROP INDEX accounts_email_idx;\n",
		}), code: exitUsage, want: []string{`000003_idx.up.sql: line 1: unknown directive "schemahook:no-transactions"`}},
		{name: "empty migrations directory", files: map[string]string{"README.md": "nothing here"},
			code: exitUsage, want: []string{"no migrations", "expected files like 000001_init.up.sql"}},
		{name: "edited applied file (drift)", files: with(map[string]string{"000002_projects.up.sql": baseFiles["000002_projects.up.sql"] + "-- edited\n"}),
			code: exitDrift, want: []string{"000002_projects.up.sql: file changed after it was applied", "restore the original files"}},
		{name: "applied file missing (drift)", files: with(map[string]string{"000002_projects.up.sql": remove, "000002_projects.down.sql": remove,
			"000003_x.up.sql": "SELECT 1;", "000003_x.down.sql": "SELECT 1;"}),
			code: exitDrift, want: []string{"version 2 (projects): applied, but its file is missing"}},
		{name: "database newer than the binary", files: with(map[string]string{"000002_projects.up.sql": remove, "000002_projects.down.sql": remove}),
			code: exitNewer, want: []string{"the database is at version 2 but this release only knows migrations up to 1"}},
		{name: "wrong password", url: func(db *DB) string { return withPassword(t, db.URL, "wrong-"+db.Password) },
			code: exitError, want: []string{"28P01", "PGPASSWORD"}},
		{name: "wrong PGPASSWORD", url: func(db *DB) string { return withPassword(t, db.URL, "") },
			args: []string{"PGPASSWORD=wrong-" + db.Password}, code: exitError, want: []string{"28P01", "PGPASSWORD"}},
		{name: "transaction control in a transactional file", files: with(map[string]string{
			"000003_b.up.sql":   "BEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n",
			"000003_b.down.sql": "DROP TABLE b;\n",
		}), code: exitUsage, want: []string{"000003_b.up.sql:1: BEGIN", "remove the transaction control statements", "-- schemahook:no-transaction"}},
		{name: "unencoded '@' in the URL's password", url: func(db *DB) string {
			u, _ := url.Parse(db.URL)
			return "postgres://" + db.Role + ":" + rawAtPassword + "@" + u.Host + u.Path
		}, args: []string{"SCHEMAHOOK_WAIT_FOR_DB=20s"}, code: exitUsage, fast: true, want: []string{"'@' → %40", "PGPASSWORD"}},
		{name: "unreachable host", url: func(db *DB) string { return withHost(t, db.URL, closed) },
			args: []string{"SCHEMAHOOK_WAIT_FOR_DB=1s"}, code: exitTimeout, want: []string{"did not accept connections within", "connection refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := tc.files
			if files == nil {
				files = baseFiles
			}
			u := db.URL
			if tc.url != nil {
				u = tc.url(db)
			}
			r := run(t, u, append(migrationsEnv(writeDir(t, files)), tc.args...), "update")
			msgs := r.messages()
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			if tc.fast && r.elapsed > 5*time.Second {
				t.Errorf("took %s: waited instead of answering at once", r.elapsed.Round(time.Millisecond))
			}
			for _, w := range tc.want {
				if !strings.Contains(msgs, w) {
					t.Errorf("the error does not say %q:\n%s", w, msgs)
				}
			}
			if after := pgtest.Fingerprint(t, admin); after != before {
				t.Errorf("the database changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestDirtyGolangMigrateDatabase: a database left dirty by golang-migrate itself (its pgx/v5
// driver commits the dirty flag before running a file that then fails) is refused with exit 6
// and a fix-it message, and nothing is changed — not even schemahook's history table created.
func TestDirtyGolangMigrateDatabase(t *testing.T) {
	db := newDB(t)
	dir := writeDir(t, with(map[string]string{
		"000003_fails.up.sql":   "CREATE TABLE half (id int);\nSELECT * FROM missing_table;\n",
		"000003_fails.down.sql": "DROP TABLE IF EXISTS half;\n",
	}))
	src, err := iofs.New(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer func(c *sql.DB) { _ = c.Close() }(sqlDB)
	drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err == nil || errors.Is(err, migrate.ErrNoChange) {
		t.Fatalf("golang-migrate up with a failing file: %v, want an error", err)
	}
	if v, dirty, err := m.Version(); err != nil || v != 3 || !dirty {
		t.Fatalf("golang-migrate left (%d, %t, %v), want (3, dirty)", v, dirty, err)
	}
	admin := connect(t, db.AdminURL)
	before := pgtest.Fingerprint(t, admin)
	for _, cmd := range [][]string{{"update"}, {"check"}} {
		r := run(t, db.URL, migrationsEnv(dir), cmd...)
		msgs := r.messages()
		if r.code != exitDirty || !strings.Contains(msgs, "database is dirty at version 3 (000003_fails.up.sql)") || !strings.Contains(msgs, "schemahook force 3") {
			t.Errorf("%s: exit %d, want %d with a dirty message naming the file and `schemahook force 3`:\n%s", cmd[0], r.code, exitDirty, msgs)
		}
	}
	if after := pgtest.Fingerprint(t, admin); after != before {
		t.Errorf("refusing a dirty database changed it:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if historyVersions(t, admin) != nil {
		t.Error("the history table was created on a database update refused")
	}
}

// TestStrayFilesStayIgnored: Load ignores files that are not *.sql (README, an editor's or a
// merge tool's leftover copy). golang-migrate, which runs the migrations, must ignore them too —
// it would otherwise read "000003_x.up.sql.orig" as a second version 3 and refuse to start.
func TestStrayFilesStayIgnored(t *testing.T) {
	db := newDB(t)
	files := with(map[string]string{
		"000003_email_idx.up.sql":      "CREATE INDEX accounts_email_idx ON accounts (email);\n",
		"000003_email_idx.down.sql":    "DROP INDEX accounts_email_idx;\n",
		"000003_email_idx.up.sql.orig": "CREATE INDEX accounts_email_idx ON accounts (id);\n",
		"000004_notes.down.md":         "notes about a migration that does not exist",
		"README.md":                    "migrations of the example app",
	})
	r := run(t, db.URL, migrationsEnv(writeDir(t, files)), "update")
	if r.code != exitOK {
		t.Fatalf("update with stray non-.sql files: exit %d, want 0\n%s", r.code, r.messages())
	}
	c := connect(t, db.AdminURL)
	if v, dirty := versionRow(t, c); v != 3 || dirty {
		t.Fatalf("schema_migrations = (%d, %t), want (3, false)", v, dirty)
	}
}

func withPassword(t *testing.T, raw, password string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if password == "" {
		u.User = url.User(u.User.Username())
	} else {
		u.User = url.UserPassword(u.User.Username(), password)
	}
	return u.String()
}

func withHost(t *testing.T, raw, hostport string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
