package integration

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/tests/pgtest"
)

// yes runs a development command that reverts migrations: the test's stdin is not a terminal.
func yes(t *testing.T, dbURL, dir string, args ...string) result {
	t.Helper()
	return cli(t, dbURL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, append(args, "--yes")...)
}

// at asserts the version row (clean) and the history rows.
func at(t *testing.T, c *pgx.Conn, version int, history ...int) {
	t.Helper()
	if v, dirty := versionRow(t, c); v != version || dirty {
		t.Fatalf("version row (%d, dirty %t), want (%d, clean)", v, dirty, version)
	}
	if got := historyVersions(t, c); !slices.Equal(got, history) && (len(got) != 0 || len(history) != 0) {
		t.Fatalf("history %v, want %v", got, history)
	}
}

func columnExists(t *testing.T, c *pgx.Conn, table, column string) bool {
	t.Helper()
	var ok bool
	err := c.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name = $1 AND column_name = $2)`,
		table, column).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func indexExists(t *testing.T, c *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := c.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// down, goto and redo with the files present, through the binary: each step reverts or applies
// what it says (tables, columns, a no-transaction down), and the version and history follow.
func TestDownGotoRedoWithFiles(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	dir := writeDir(t, files)
	c := db.Conn(t)
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	r := yes(t, db.URL, dir, "down")
	if r.Code != exitOK || !strings.Contains(r.Stderr, "reverted migration") {
		t.Fatalf("down: exit %d", r.Code)
	}
	at(t, c, 4, 1, 2, 3, 4)
	if tableExists(t, c, "account_settings") {
		t.Fatal("down left account_settings")
	}
	// Two at once, through 000004's transactional down and 000003's no-transaction one.
	if r := yes(t, db.URL, dir, "down", "2"); r.Code != exitOK {
		t.Fatalf("down 2: exit %d", r.Code)
	}
	at(t, c, 2, 1, 2)
	if columnExists(t, c, "projects", "slug") || indexExists(t, c, "accounts_email_lower_key") {
		t.Fatal("down 2 left projects.slug or accounts_email_lower_key")
	}
	if r := yes(t, db.URL, dir, "goto", "4"); r.Code != exitOK {
		t.Fatalf("goto 4: exit %d", r.Code)
	}
	at(t, c, 4, 1, 2, 3, 4)
	if !columnExists(t, c, "projects", "slug") || tableExists(t, c, "account_settings") {
		t.Fatal("goto 4 did not apply exactly 3 and 4")
	}
	if r := yes(t, db.URL, dir, "goto", "1"); r.Code != exitOK {
		t.Fatalf("goto 1: exit %d", r.Code)
	}
	at(t, c, 1, 1)
	if tableExists(t, c, "projects") || !tableExists(t, c, "accounts") {
		t.Fatal("goto 1 did not leave exactly accounts")
	}
	if r := yes(t, db.URL, dir, "goto", "9"); r.Code != exitUsage || !strings.Contains(r.Stderr, "no migration has version 9") {
		t.Fatalf("goto 9: exit %d, want %d", r.Code, exitUsage)
	}
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}

	// The developer edits the newest migration and runs it again; the history records the new
	// file, so the gate sees no drift.
	files["000005_account_settings.up.sql"] += "\nALTER TABLE account_settings ADD COLUMN theme text;\n"
	dir = writeDir(t, files)
	if r := yes(t, db.URL, dir, "redo"); r.Code != exitOK {
		t.Fatalf("redo: exit %d", r.Code)
	}
	at(t, c, 5, 1, 2, 3, 4, 5)
	if !columnExists(t, c, "account_settings", "theme") {
		t.Fatal("redo did not apply the edited file")
	}
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, "check", "--strict"); r.Code != exitOK {
		t.Fatalf("check --strict after redo: exit %d", r.Code)
	}

	if r := yes(t, db.URL, dir, "down", "--all"); r.Code != exitOK {
		t.Fatalf("down --all: exit %d", r.Code)
	}
	if v, _ := versionRow(t, c); v != -1 || tableExists(t, c, "accounts") || len(historyVersions(t, c)) != 0 {
		t.Fatalf("down --all left version %d, accounts or history", v)
	}
	if r := yes(t, db.URL, dir, "down"); r.Code != exitUsage || !strings.Contains(r.Stderr, "0 migrations are applied") {
		t.Fatalf("down on an empty database: exit %d", r.Code)
	}
}

// A migration whose files are gone from the directory is reverted with the down SQL stored in
// the history when it was applied.
func TestDownUsesStoredSQLWhenTheFileIsGone(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	c := db.Conn(t)
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	r := yes(t, db.URL, writeDir(t, upTo(files, 4)), "down")
	if r.Code != exitOK || !strings.Contains(r.Stderr, `000005_account_settings.down.sql (stored)`) {
		t.Fatalf("down with 000005's files gone: exit %d", r.Code)
	}
	at(t, c, 4, 1, 2, 3, 4)
	if tableExists(t, c, "account_settings") {
		t.Fatal("account_settings remains")
	}
	// goto: the stored no-transaction down of 3 and the file of 2 in one run.
	if r := yes(t, db.URL, writeDir(t, upTo(files, 2)), "goto", "1"); r.Code != exitOK {
		t.Fatalf("goto 1 with 3 and 4 gone: exit %d", r.Code)
	}
	at(t, c, 1, 1)
	if tableExists(t, c, "projects") || indexExists(t, c, "accounts_email_lower_key") {
		t.Fatal("goto 1 left projects or the unique index")
	}
}

// An irreversible migration refuses down and goto before anything changes, with its file
// present (no down file) and with its file gone (the history says so).
func TestDownRefusesIrreversible(t *testing.T) {
	db := pgtest.New(t)
	files := upTo(exampleFiles(t), 2)
	files["000003_drop_titles.up.sql"] = "-- schemahook:irreversible\nALTER TABLE projects DROP COLUMN title;\n"
	files["000004_more.up.sql"] = "CREATE TABLE more (id int);"
	files["000004_more.down.sql"] = "DROP TABLE more;"
	dir := writeDir(t, files)
	c := db.Conn(t)
	if r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	for _, args := range [][]string{{"down", "2"}, {"goto", "2"}} {
		r := yes(t, db.URL, dir, args...)
		if r.Code != exitUsage || !strings.Contains(r.Stderr, "000003_drop_titles.up.sql is marked irreversible") ||
			!strings.Contains(r.Stderr, "nothing was changed") {
			t.Fatalf("%v: exit %d, want %d and the irreversible migration named", args, r.Code, exitUsage)
		}
		at(t, c, 4, 1, 2, 3, 4)
		if !tableExists(t, c, "more") {
			t.Fatalf("%v changed the database", args)
		}
	}
	// Without the files, the stored history refuses the same.
	if r := yes(t, db.URL, writeDir(t, upTo(files, 2)), "goto", "2"); r.Code != exitUsage || !strings.Contains(r.Stderr, "3 (drop_titles) is marked irreversible") {
		t.Fatalf("goto 2 with the files gone: exit %d", r.Code)
	}
	at(t, c, 4, 1, 2, 3, 4)
	// What is reversible still goes.
	if r := yes(t, db.URL, dir, "down"); r.Code != exitOK {
		t.Fatalf("down: exit %d", r.Code)
	}
	at(t, c, 3, 1, 2, 3)
}

// Without a terminal on stdin and without --yes, nothing goes down: a hook never reverts by
// accident, and the message says what to add.
func TestRewindRefusesWithoutTerminalOrYes(t *testing.T) {
	db := pgtest.New(t)
	c := db.Conn(t)
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	for _, args := range [][]string{{"down"}, {"down", "3"}, {"goto", "1"}, {"redo"}} {
		r := cli(t, db.URL, nil, args...)
		if r.Code != exitUsage || !strings.Contains(r.Stderr, "add --yes") {
			t.Fatalf("%v without --yes: exit %d, want %d with a hint to add --yes", args, r.Code, exitUsage)
		}
		at(t, c, 5, 1, 2, 3, 4, 5)
	}
}

// The refusal of an older release (exit 5) names the flag of the release path.
func TestNewerMessageNamesAllowDowngrade(t *testing.T) {
	db := pgtest.New(t)
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	old := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, upTo(exampleFiles(t), 3))}
	for _, cmd := range []string{"update", "check"} {
		if r := cli(t, db.URL, old, cmd); r.Code != exitNewer || !strings.Contains(r.Stderr, "--allow-downgrade") {
			t.Fatalf("%s on a newer database: exit %d, want %d naming --allow-downgrade", cmd, r.Code, exitNewer)
		}
	}
}

// A database migrated by golang-migrate, with no history table yet: down reverts with the files
// and leaves the history consistent for the next update.
func TestDownOnGolangMigrateDatabase(t *testing.T) {
	p := newPair(t, tableVariants[0])
	dir := writeDir(t, cliFiles()) // tables a, b, c, d
	if r := p.migrate(dir, nil, "up"); r.Code != 0 {
		t.Fatalf("migrate up: exit %d", r.Code)
	}
	if r := yes(t, p.db.URL, dir, "down", "2"); r.Code != exitOK {
		t.Fatalf("down 2: exit %d", r.Code)
	}
	at(t, p.c, 2)
	if tableExists(t, p.c, "c") || tableExists(t, p.c, "d") || !tableExists(t, p.c, "b") {
		t.Fatal("down 2 did not revert exactly c and d")
	}
	if r := cli(t, p.db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir}, "update"); r.Code != exitOK {
		t.Fatalf("update after down: exit %d", r.Code)
	}
	at(t, p.c, 4, 1, 2, 3, 4)
}
