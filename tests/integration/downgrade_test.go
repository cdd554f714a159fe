package integration

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// An older release reverts a newer schema with the down SQL stored in the history — including
// a no-transaction down (DROP INDEX CONCURRENTLY) — without having the newer files.
func TestDowngradeWithStoredDownSQL(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	c := db.Conn(t)
	old := newRunner(t, db, writeDir(t, upTo(files, 2)), pgdriver.Options{})

	// Without permission: refused, nothing changed, and the message gives both choices.
	err := old.Guard(ctx, false)
	if !errors.Is(err, runner.ErrDatabaseNewer) || !strings.Contains(err.Error(), "restore the database from a backup") ||
		!strings.Contains(err.Error(), "config.allowDowngrade=true") {
		t.Fatalf("guard = %v", err)
	}
	if v, _ := versionRow(t, c); v != 5 {
		t.Fatalf("guard changed the version to %d", v)
	}

	res, err := old.Downgrade(ctx)
	if err != nil {
		t.Fatalf("downgrade: %v", err)
	}
	if res.From != 5 || res.To != 2 || !slices.Equal(res.Applied, []uint{5, 4, 3}) {
		t.Fatalf("downgrade result = %+v, want 5 → 2 reverting 5,4,3", res)
	}
	if v, dirty := versionRow(t, c); v != 2 || dirty {
		t.Fatalf("after downgrade: (%d, %t), want (2, false)", v, dirty)
	}
	if tableExists(t, c, "account_settings") || tableExists(t, c, "accounts_email_lower_key") {
		t.Fatal("objects of reverted migrations remain")
	}
	var slug bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'projects' AND column_name = 'slug')`).Scan(&slug); err != nil || slug {
		t.Fatalf("projects.slug still exists (%v)", err)
	}
	if got := historyVersions(t, c); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("history after downgrade = %v", got)
	}
	// The old release's gate now opens, and the new release can upgrade again.
	if err := old.Check(ctx); err != nil {
		t.Fatalf("old release check after downgrade: %v", err)
	}
	if res, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx); err != nil || !slices.Equal(res.Applied, []uint{3, 4, 5}) {
		t.Fatalf("re-upgrade = %+v, %v", res, err)
	}
}

func TestDowngradeRefusesIrreversible(t *testing.T) {
	db := pgtest.New(t)
	files := upTo(exampleFiles(t), 2)
	files["000003_drop_titles.up.sql"] = "-- schemahook:irreversible\nALTER TABLE projects DROP COLUMN title;\n"
	files["000004_more.up.sql"] = "CREATE TABLE more (id int);"
	files["000004_more.down.sql"] = "DROP TABLE more;"
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := newRunner(t, db, writeDir(t, upTo(files, 2)), pgdriver.Options{}).Downgrade(ctx)
	if !errors.Is(err, runner.ErrIrreversible) || !errors.Is(err, runner.ErrDatabaseNewer) ||
		!strings.Contains(err.Error(), "3 (drop_titles) is marked irreversible") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("downgrade = %v, want an irreversible refusal", err)
	}
	c := db.Conn(t)
	if v, dirty := versionRow(t, c); v != 4 || dirty || !tableExists(t, c, "more") {
		t.Fatalf("refused downgrade changed the database: (%d, %t)", v, dirty)
	}
	// Reverting only what is reversible is fine.
	if res, err := newRunner(t, db, writeDir(t, upTo(files, 3)), pgdriver.Options{}).Downgrade(ctx); err != nil || !slices.Equal(res.Applied, []uint{4}) {
		t.Fatalf("downgrade to 3 = %+v, %v", res, err)
	}
}

func TestGuardAndAllowDowngradeCLI(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	old := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, upTo(files, 4))}
	if r := cli(t, db.URL, old, "guard"); r.Code != exitNewer || !strings.Contains(r.Stderr, "rollback was stopped before changing anything") {
		t.Fatalf("guard: exit %d", r.Code)
	}
	if r := cli(t, db.URL, old, "guard", "--allow-downgrade"); r.Code != exitOK {
		t.Fatalf("guard --allow-downgrade: exit %d", r.Code)
	}
	if r := cli(t, db.URL, old, "check"); r.Code != exitOK {
		t.Fatalf("check after downgrade: exit %d", r.Code)
	}
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatal("re-upgrade failed")
	}
	older := []string{"SCHEMAHOOK_MIGRATIONS=" + writeDir(t, upTo(files, 3)), "SCHEMAHOOK_ALLOW_DOWNGRADE=true"}
	if r := cli(t, db.URL, older, "update"); r.Code != exitOK || !strings.Contains(r.Stderr, "schema downgraded") {
		t.Fatalf("update with SCHEMAHOOK_ALLOW_DOWNGRADE: exit %d", r.Code)
	}
	if v, _ := versionRow(t, db.Conn(t)); v != 3 {
		t.Fatalf("version %d, want 3", v)
	}
}
