package integration

import (
	"net/url"
	"strings"
	"testing"

	"github.com/schemahook/schemahook/tests/clitest"
)

// A team moving from golang-migrate keeps its DATABASE_URL: schemahook reads pgx5:// and
// x-migrations-table as golang-migrate does, so it finds the version golang-migrate recorded in
// that table, and continues from it.
func TestGolangMigrateURL(t *testing.T) {
	p := newPair(t, tables{"x-migrations-table", "app_versions", "schemahook_history"})
	files := cliFiles()
	p.code("migrate up 2", p.migrate(p.release(files, 2, nil), nil, "up"), exitOK)

	base, err := url.Parse(p.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	badPassword := p.migrateURL(url.UserPassword(base.User.Username(), "not-the-password"))
	migrateURL := p.migrateURL(nil)
	if !strings.HasPrefix(migrateURL, "pgx5://") || !strings.Contains(migrateURL, "x-migrations-table=app_versions") {
		t.Fatalf("golang-migrate URL %q lacks pgx5:// or x-migrations-table", migrateURL)
	}
	dir := p.release(files, 4, nil)
	env := func(dbURL string) []string { return []string{"DATABASE_URL=" + dbURL, "SCHEMAHOOK_MIGRATIONS=" + dir} }

	r := clitest.Run(t, env(migrateURL+"&x-statement-timeout=60000&x-multi-statement=true"), "check")
	p.code("check with golang-migrate's URL", r, exitNotCurrent, "schema at 2", "--migrations-table app_versions", "x-multi-statement ignored")
	p.code("update with golang-migrate's URL", clitest.Run(t, env(migrateURL), "update"), exitOK)
	p.at(4, false)

	// What has no exact equivalent is refused with what to write instead, and never shows the
	// password.
	schemaTable := strings.Replace(badPassword, "x-migrations-table=app_versions",
		"x-migrations-table=%22meta%22.%22app_versions%22&x-migrations-table-quoted=true", 1)
	r = clitest.Run(t, env(schemaTable), "check")
	p.code("a version table in another schema", r, exitUsage, "--migrations-table app_versions", "search_path")
	r2 := clitest.Run(t, env(migrateURL), "check", "--migrations-table", "other_versions")
	p.code("a URL and a flag that disagree", r2, exitUsage, "--migrations-table app_versions", "other_versions")
	for _, out := range []string{r.Stdout + r.Stderr, r2.Stdout + r2.Stderr} {
		if strings.Contains(out, "not-the-password") {
			t.Errorf("output shows the password:\n%s", out)
		}
	}
}
