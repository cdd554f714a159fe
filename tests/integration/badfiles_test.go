package integration

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/schemahook/schemahook/tests/pgtest"
)

// atVersion1 returns a database at version 1 (table a) and the files that put it there.
func atVersion1(t *testing.T) (*pgtest.DB, map[string]string) {
	t.Helper()
	db := pgtest.New(t)
	base := map[string]string{"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n"}
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, base)}, "update"); r.Code != exitOK {
		t.Fatalf("setup: exit %d", r.Code)
	}
	return db, base
}

// A golang-migrate style file wraps itself in BEGIN/COMMIT. Every command that would run it
// refuses it before anything runs — exit 2, file:line, and what to do — status says update
// would refuse it, the gate only sees a pending migration, and lint names it with its rule;
// marked no-transaction, the same file applies.
func TestTransactionControlRefusedByEveryCommand(t *testing.T) {
	db, base := atVersion1(t)
	files := maps.Clone(base)
	files["000002_b.up.sql"] = "-- golang-migrate wraps nothing, so the file did\nBEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n"
	files["000002_b.down.sql"] = "DROP TABLE b;\n"
	dir := writeDir(t, files)
	env := []string{"SCHEMAHOOK_MIGRATIONS=" + dir, "SCHEMAHOOK_SERVER_URL=" + db.Server.AdminURL}
	c := db.Conn(t)
	before := pgtest.Fingerprint(t, c)
	for _, args := range [][]string{{"update"}, {"plan"}, {"status"}, {"status", "-o", "json"}, {"verify"}} {
		r := cli(t, db.URL, env, args...)
		out := r.Stderr + r.Stdout
		want := exitUsage
		if args[0] == "status" {
			want = exitOK // status reports; it refuses nothing
		}
		if r.Code != want {
			t.Errorf("%v: exit %d, want %d", args, r.Code, want)
		}
		for _, want := range []string{"000002_b.up.sql:2: BEGIN", "remove the transaction control statements", "-- schemahook:no-transaction"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v does not say %q:\n%s", args, want, out)
			}
		}
	}
	if r := cli(t, db.URL, env, "check"); r.Code != exitNotCurrent {
		t.Errorf("check: exit %d, want %d (a pending migration)\n%s", r.Code, exitNotCurrent, r.Stderr)
	}
	if after := pgtest.Fingerprint(t, c); after != before || tableExists(t, c, "b") {
		t.Fatalf("the database changed:\nbefore %s\nafter  %s", before, after)
	}
	if v, dirty := versionRow(t, c); v != 1 || dirty {
		t.Fatalf("version (%d, %t), want (1, false)", v, dirty)
	}

	r := cli(t, "", nil, "lint", dir)
	if r.Code != 10 || !strings.Contains(r.Stdout, "000002_b.up.sql:2:1: transaction-control: BEGIN") || !strings.Contains(r.Stdout, "000002_b.up.sql:4:1: transaction-control: COMMIT") {
		t.Errorf("lint: exit %d, want 10 with a transaction-control finding at lines 2 and 4:\n%s", r.Code, r.Stdout)
	}

	files["000002_b.up.sql"] = "-- schemahook:no-transaction\n" + files["000002_b.up.sql"]
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}, "update"); r.Code != exitOK {
		t.Fatalf("the same file marked no-transaction: exit %d", r.Code)
	}
	if v, dirty := versionRow(t, c); v != 2 || dirty || !tableExists(t, c, "b") {
		t.Fatalf("version (%d, %t), b exists %t; want (2, false) and b", v, dirty, tableExists(t, c, "b"))
	}
}

// What the catalog cannot see at the top level cannot end the transaction either: a COMMIT in
// a DO block or a procedure fails inside the transaction block schemahook opens (SQLSTATE
// 2D000), so the file fails cleanly (exit 3) and nothing of it stays.
func TestHiddenCommitFailsClean(t *testing.T) {
	for name, up := range map[string]string{
		"DO block":  "CREATE TABLE b (id int);\nDO $$ BEGIN COMMIT; END $$;\n",
		"procedure": "CREATE TABLE b (id int);\nCREATE PROCEDURE b_commit() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;\nCALL b_commit();\n",
	} {
		t.Run(name, func(t *testing.T) {
			db, base := atVersion1(t)
			files := maps.Clone(base)
			files["000002_b.up.sql"], files["000002_b.down.sql"] = up, "DROP TABLE b;\n"
			r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}, "update")
			if r.Code != exitFailed || !strings.Contains(r.Stderr, "SQLSTATE 2D000") || !strings.Contains(r.Stderr, "still at version 1, clean") {
				t.Errorf("exit %d, want %d saying SQLSTATE 2D000 and still at version 1, clean:\n%s", r.Code, exitFailed, r.Stderr)
			}
			c := db.Conn(t)
			if v, dirty := versionRow(t, c); v != 1 || dirty || tableExists(t, c, "b") {
				t.Fatalf("version (%d, %t), b exists %t; want (1, false), no b", v, dirty, tableExists(t, c, "b"))
			}
		})
	}
}

// The exit code tells the state the run left: a no-transaction file failing after a statement
// that worked leaves the version dirty and exits 6, like the next run that finds it; failing at
// its first statement changes nothing and exits 3.
func TestExitCodeMatchesTheStateLeft(t *testing.T) {
	cases := []struct {
		name    string
		up      string
		code    int
		version int
		dirty   bool
		says    string
	}{
		{"second statement fails", "-- schemahook:no-transaction\nCREATE TABLE c (id int);\nCREATE INDEX CONCURRENTLY c_idx ON nope (id);\n",
			exitDirty, 2, true, "DIRTY at version 2"},
		{"lock wait runs out after a statement worked", "-- schemahook:no-transaction\nCREATE TABLE c (id int);\nALTER TABLE a ADD COLUMN x int;\n",
			exitDirty, 2, true, "DIRTY at version 2"},
		{"first statement fails", "-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY c_idx ON nope (id);\nCREATE TABLE c (id int);\n",
			exitDirty, 2, true, "DIRTY at version 2"},
		{"first statement fails, not concurrently", "-- schemahook:no-transaction\nCREATE TABLE c (id int REFERENCES nope);\nCREATE TABLE d (id int);\n",
			exitFailed, 1, false, "still at version 1, clean"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, base := atVersion1(t)
			files := maps.Clone(base)
			files["000002_c.up.sql"], files["000002_c.down.sql"] = tc.up, "DROP TABLE IF EXISTS c;\n"
			env := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}
			if strings.Contains(tc.name, "lock wait") {
				holder := db.Conn(t)
				if _, err := holder.Exec(context.Background(), "BEGIN; LOCK TABLE a IN ACCESS SHARE MODE"); err != nil {
					t.Fatal(err)
				}
				env = append(env, "SCHEMAHOOK_TIMEOUT=2s")
			}
			r := cli(t, db.URL, env, "update")
			if r.Code != tc.code || !strings.Contains(r.Stderr, tc.says) {
				t.Errorf("exit %d, want %d saying %q:\n%s", r.Code, tc.code, tc.says, r.Stderr)
			}
			c := db.Conn(t)
			if v, dirty := versionRow(t, c); v != tc.version || dirty != tc.dirty {
				t.Fatalf("version (%d, %t), want (%d, %t)", v, dirty, tc.version, tc.dirty)
			}
			if tc.dirty {
				if r := cli(t, db.URL, env, "update"); r.Code != exitDirty {
					t.Errorf("the next run: exit %d, want %d", r.Code, exitDirty)
				}
			}
		})
	}
}

// A SQL-standard function body's semicolons are the body's: a no-transaction file, sent
// statement by statement, sends the whole CREATE FUNCTION, as the server's grammar reads it, and
// a transactional file with one is not taken for one that ends its own transaction.
func TestSQLStandardBodies(t *testing.T) {
	const fn = "CREATE FUNCTION answer(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1 AS case;\n  SELECT 2 case, 3 case FROM (SELECT 1) s;\n  SELECT CASE WHEN x > 0 THEN 42 END;\nEND;\n"
	for name, up := range map[string]string{
		"no-transaction": "-- schemahook:no-transaction\n" + fn + "CREATE INDEX CONCURRENTLY a_id ON a (id);\n",
		"transactional":  fn + "CREATE INDEX a_id ON a (id);\n",
	} {
		t.Run(name, func(t *testing.T) {
			db, base := atVersion1(t)
			files := maps.Clone(base)
			files["000002_f.up.sql"], files["000002_f.down.sql"] = up, "DROP INDEX a_id;\nDROP FUNCTION answer(int);\n"
			if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}, "update"); r.Code != exitOK {
				t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
			}
			var got int
			if err := db.Conn(t).QueryRow(context.Background(), "SELECT answer(1)").Scan(&got); err != nil || got != 42 {
				t.Fatalf("answer(1) = %d, %v; want 42", got, err)
			}
		})
	}
}

// golang-migrate wraps nothing in a transaction, so files it applied often say BEGIN … COMMIT
// themselves. A database it migrated with such files is adopted as it is: every command reads
// it and update applies the next migration; only files that would run are refused.
func TestTransactionControlInAppliedFilesIsAccepted(t *testing.T) {
	db := pgtest.New(t)
	c := db.Conn(t)
	// What golang-migrate leaves after applying 000001 (its own BEGIN … COMMIT ran as written).
	for _, q := range []string{
		"CREATE TABLE a (id int)",
		"CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)",
		"INSERT INTO schema_migrations VALUES (1, false)",
	} {
		if _, err := c.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"000001_a.up.sql":   "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n",
		"000001_a.down.sql": "BEGIN;\nDROP TABLE a;\nCOMMIT;\n",
		"000002_b.up.sql":   "CREATE TABLE b (id int);\n",
		"000002_b.down.sql": "DROP TABLE b;\n",
	}
	env := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}
	for _, step := range []struct {
		args []string
		want int
	}{{[]string{"check"}, exitNotCurrent}, {[]string{"status"}, exitOK}, {[]string{"plan"}, exitOK}, {[]string{"update"}, exitOK}, {[]string{"check"}, exitOK}} {
		if r := cli(t, db.URL, env, step.args...); r.Code != step.want {
			t.Fatalf("%v: exit %d, want %d\n%s", step.args, r.Code, step.want, r.Stderr)
		}
	}
	if v, dirty := versionRow(t, c); v != 2 || dirty || !tableExists(t, c, "b") {
		t.Fatalf("version (%d, %t), b exists %t; want (2, false) and b", v, dirty, tableExists(t, c, "b"))
	}
}
