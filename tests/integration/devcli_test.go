package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// create makes the directory, numbers sequentially or by timestamp, and its template names the
// directives without being one: the new files load as an ordinary migration.
func TestCreateMakesDirectoryAndVersions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db", "migrations") // does not exist yet
	env := []string{"SCHEMAHOOK_MIGRATIONS=" + dir}
	if r := cli(t, "", env, "create", "create_users"); r.Code != exitOK {
		t.Fatalf("create in a missing directory: exit %d", r.Code)
	}
	up, err := os.ReadFile(filepath.Join(dir, "000001_create_users.up.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"-- schemahook:no-transaction", "-- schemahook:irreversible", "-- schemahook:lint-ignore"} {
		if !strings.Contains(string(up), d) {
			t.Errorf("the up template does not name %q:\n%s", d, up)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "000001_create_users.down.sql")); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "", env, "create", "add-index", "--digits", "4"); r.Code != exitOK {
		t.Fatalf("second create: exit %d", r.Code)
	}
	if _, err := os.Stat(filepath.Join(dir, "0002_add_index.up.sql")); err != nil {
		t.Fatal(err)
	}
	// The templates mention the directives without applying any: no-transaction, irreversible
	// or an unknown directive would change how the files load.
	if r := cli(t, "", env, "version"); r.Code != exitOK || !strings.Contains(r.Stdout, "migrations head: 2 (add_index)") {
		t.Fatalf("version over the created files: exit %d", r.Code)
	}

	ts := filepath.Join(t.TempDir(), "ts")
	tsEnv := []string{"SCHEMAHOOK_MIGRATIONS=" + ts}
	if r := cli(t, "", tsEnv, "create", "first", "--timestamp"); r.Code != exitOK {
		t.Fatalf("create --timestamp: exit %d", r.Code)
	}
	names := dirNames(t, ts)
	if len(names) != 2 || !regexp.MustCompile(`^20\d{12}_first\.down\.sql$`).MatchString(names[0]) {
		t.Fatalf("create --timestamp wrote %v, want YYYYMMDDhhmmss_first.{up,down}.sql", names)
	}
	// A version below the newest would sort before applied migrations: refused.
	if r := cli(t, "", tsEnv, "create", "second", "--time-format", "060102"); r.Code != exitUsage || !strings.Contains(r.Stderr, "not above the newest migration") {
		t.Fatalf("create with a smaller timestamp: exit %d", r.Code)
	}
	if r := cli(t, "", tsEnv, "create", "third", "--seq", "--timestamp"); r.Code != exitUsage {
		t.Fatalf("create --seq --timestamp: exit %d", r.Code)
	}
	if got := dirNames(t, ts); !slices.Equal(got, names) {
		t.Fatalf("refused creates wrote files: %v", got)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// diagram: -o is the format as in every command, --file the file; the old --output FILE and
// --format still work, with a warning.
func TestDiagramFileAndOutputFlags(t *testing.T) {
	db := pgtest.New(t)
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatal("update failed")
	}
	tmp := t.TempDir()
	md := filepath.Join(tmp, "schema.md")
	if r := cli(t, db.URL, nil, "diagram", "-o", "markdown", "--file", md); r.Code != exitOK || r.Stdout != "" {
		t.Fatalf("diagram -o markdown --file: exit %d", r.Code)
	}
	if b, err := os.ReadFile(md); err != nil || !strings.HasPrefix(string(b), "```mermaid\nerDiagram") {
		t.Fatalf("%s: %q, %v", md, b, err)
	}
	if r := cli(t, db.URL, nil, "diagram", "-o", "mermaid"); r.Code != exitOK || !strings.HasPrefix(r.Stdout, "erDiagram") {
		t.Fatalf("diagram -o mermaid: exit %d", r.Code)
	}
	old := filepath.Join(tmp, "old.mmd")
	r := cli(t, db.URL, nil, "diagram", "--output", old, "--format", "markdown")
	if r.Code != exitOK || !strings.Contains(r.Stderr, "deprecated") || !strings.Contains(r.Stderr, "--file") {
		t.Fatalf("diagram --output FILE: exit %d, want 0 with a deprecation warning naming --file", r.Code)
	}
	if b, err := os.ReadFile(old); err != nil || !strings.HasPrefix(string(b), "```mermaid") {
		t.Fatalf("%s: %q, %v", old, b, err)
	}
	// A mistyped format is a usage error, not a file name.
	for _, args := range [][]string{{"-o", "svg"}, {"-o", "svg", "--file", md}, {"--format", "svg"}} {
		if r := cli(t, db.URL, nil, append([]string{"diagram"}, args...)...); r.Code != exitUsage {
			t.Fatalf("diagram %v: exit %d, want %d", args, r.Code, exitUsage)
		}
	}
}

// lint takes --migrations like every command; a directory argument is the same, and the two
// must agree.
func TestLintMigrationsFlag(t *testing.T) {
	bad := writeDir(t, map[string]string{
		"000001_a.up.sql":   "CREAT TABLE a (id int);",
		"000001_a.down.sql": "DROP TABLE a;",
	})
	if r := cli(t, "", nil, "lint", "--migrations", bad); r.Code != 10 || !strings.Contains(r.Stdout, "000001_a.up.sql") {
		t.Fatalf("lint --migrations: exit %d, want 10 with the finding", r.Code)
	}
	if r := cli(t, "", nil, "lint", bad); r.Code != 10 {
		t.Fatalf("lint DIR: exit %d, want 10", r.Code)
	}
	if r := cli(t, "", nil, "lint", bad, "--migrations", clitest.ExampleDir()); r.Code != exitUsage || !strings.Contains(r.Stderr, "give the directory once") {
		t.Fatalf("lint DIR --migrations OTHER: exit %d, want %d", r.Code, exitUsage)
	}
}

// Every command that connects waits for the database the same time by default, and the help
// groups the commands.
func TestHelpGroupsAndSameWaitDefault(t *testing.T) {
	r := cli(t, "", nil, "--help")
	for _, g := range []string{"Everyday development:", "Checks for pre-commit hooks and CI:", "Kubernetes (Helm hooks and app pods):", "Recovery:"} {
		if !strings.Contains(r.Stdout, g) {
			t.Errorf("schemahook --help has no group %q", g)
		}
	}
	for _, cmd := range []string{"update", "guard", "status", "plan", "force", "diagram", "verify", "down", "goto", "redo"} {
		r := cli(t, "", nil, cmd, "--help")
		line := ""
		for l := range strings.Lines(r.Stdout) {
			if strings.Contains(l, "--wait-for-db") {
				line = l
			}
		}
		if !strings.Contains(line, "(default 1m0s)") {
			t.Errorf("%s --help: --wait-for-db line %q, want the default 1m0s", cmd, strings.TrimSpace(line))
		}
		if !strings.Contains(r.Stdout, "Examples:") {
			t.Errorf("%s --help has no examples", cmd)
		}
	}
}
