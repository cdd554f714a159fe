package integration

import (
	"strings"
	"testing"

	"github.com/schemahook/schemahook/tests/pgtest"
)

// What a command would otherwise skip or apply in silence is logged as a warning, and the
// command still does its job: a file that looks like a migration but is not read as one, an
// empty migration, a SCHEMAHOOK_* variable no command reads.
func TestWarnings(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	files["000006_later.up.SQL"] = "CREATE TABLE later (id int);\n"
	files["000006_noop.up.sql"] = "-- to be written\n"
	files["000006_noop.down.sql"] = "\n"
	files["README.md"] = "# our migrations\n"
	dir := writeDir(t, files)
	r := cli(t, db.URL, []string{"SCHEMAHOOK_MIGRATIONS=" + dir, "SCHEMAHOOK_LOCKTIMEOUT=1s"}, "update")
	if r.Code != exitOK {
		t.Fatalf("update: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"000006_later.up.SQL is not read as a migration: the suffix is lower case: rename it to 000006_later.up.sql",
		"000006_noop.up.sql is empty",
		"000006_noop.down.sql is empty",
		"SCHEMAHOOK_LOCKTIMEOUT is not a setting of schemahook and is ignored: did you mean SCHEMAHOOK_LOCK_TIMEOUT?",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("update's log lacks the warning %q:\n%s", want, r.Stderr)
		}
	}
	if n := strings.Count(r.Stderr, `"level":"WARN"`); n != 4 {
		t.Errorf("%d warnings, want 4 (README.md is no migration and needs none):\n%s", n, r.Stderr)
	}
}
