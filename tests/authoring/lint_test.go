package authoring

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// lintReport mirrors `schemahook lint -o json`.
type lintReport struct {
	Files    int `json:"files"`
	Findings []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Rule    string `json:"rule"`
		Message string `json:"message"`
		Fix     string `json:"fix"`
	} `json:"findings"`
	Silenced []struct {
		File   string `json:"file"`
		Line   int    `json:"line"`
		Rule   string `json:"rule"`
		Reason string `json:"reason"`
	} `json:"silenced"`
}

func lintJSON(t *testing.T, dir string) (lintReport, result) {
	t.Helper()
	r := run(t, nil, "lint", "-o", "json", dir)
	var rep lintReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("lint -o json printed no JSON report: %v\n%s", err, r.Stdout)
	}
	return rep, r
}

// The fixture in testdata/lint/rules has one statement per rule, plus statements that look
// alike but are safe (new tables, defaults, NOT VALID, down files) and must not be flagged.
func TestLintFlagsEachRule(t *testing.T) {
	const dir = "testdata/lint/rules"
	rep, r := lintJSON(t, dir)
	wantCode(t, r, exitLintFindings)
	var got []string
	for _, f := range rep.Findings {
		if f.Fix == "" || f.Message == "" {
			t.Errorf("finding %+v has no message or fix", f)
		}
		got = append(got, fmt.Sprintf("%s:%d:%d %s", strings.TrimPrefix(f.File, dir+"/"), f.Line, f.Column, f.Rule))
	}
	want := []string{
		"000002_breaking.up.sql:2:1 drop-column",
		"000002_breaking.up.sql:3:1 drop-table",
		"000002_breaking.up.sql:4:1 rename-column",
		"000002_breaking.up.sql:5:1 rename-table",
		"000002_breaking.up.sql:6:1 change-column-type",
		"000002_breaking.up.sql:7:1 add-required-column",
		"000002_breaking.up.sql:9:1 set-not-null",
		"000003_locks.up.sql:1:1 create-index-not-concurrently",
		"000003_locks.up.sql:2:1 constraint-not-valid",
		"000003_locks.up.sql:4:1 constraint-not-valid",
		"000003_locks.up.sql:5:1 concurrently-in-transaction",
		"000003_locks.up.sql:13:1 dml-after-ddl",
		"000004_no_down.up.sql:1:1 missing-down",
		"000005_directives.up.sql:1:1 invalid-directive",
		"000005_directives.up.sql:2:1 invalid-directive",
		"000006_syntax.up.sql:4:1 syntax-error",
		"000007_orphan.down.sql:1:1 invalid-file",
		"bad-name.sql:1:1 invalid-file",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if rep.Files != 13 {
		t.Errorf("files = %d, want 13", rep.Files)
	}
	if len(rep.Silenced) != 1 || rep.Silenced[0].Line != 12 || rep.Silenced[0].Rule != "create-index-not-concurrently" ||
		rep.Silenced[0].Reason != "accounts has under 100 rows in every environment" {
		t.Errorf("silenced = %+v, want the statement at line 12 silenced with the reason of the lint-ignore before it", rep.Silenced)
	}

	text := run(t, nil, "lint", dir)
	wantCode(t, text, exitLintFindings)
	golden(t, "lint_rules", text.Stdout)
}

// Unparseable SQL is reported with PostgreSQL's parser message and the file:line:col it points at.
func TestLintSyntaxErrorPosition(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"000001_a.up.sql":   "CREATE TABLE a (id int);\n\nALTER TABLE a\n    ADD COLUMN b int DEFAULT,\n    ADD COLUMN c int;\n",
		"000001_a.down.sql": "DROP TABLE a;\n",
	})
	rep, r := lintJSON(t, dir)
	wantCode(t, r, exitLintFindings)
	if len(rep.Findings) != 1 {
		t.Fatalf("findings %+v, want exactly the syntax error", rep.Findings)
	}
	f := rep.Findings[0]
	if f.Rule != "syntax-error" || f.File != dir+"/000001_a.up.sql" || f.Line != 4 || f.Column != 29 || f.Message != `syntax error at or near ","` {
		t.Fatalf("got %+v, want syntax-error at 000001_a.up.sql:4:29 with PostgreSQL's message", f)
	}
}

// The example migrations are clean, or carry a lint-ignore that says why.
func TestLintExampleMigrations(t *testing.T) {
	rep, r := lintJSON(t, "../../migrations")
	wantCode(t, r, exitOK)
	if len(rep.Findings) != 0 {
		t.Fatalf("the example migrations have findings: %+v", rep.Findings)
	}
	for _, s := range rep.Silenced {
		if strings.TrimSpace(s.Reason) == "" {
			t.Errorf("%s:%d silences %s without a reason", s.File, s.Line, s.Rule)
		}
	}
	// The built-in migrations are the same files.
	text := run(t, nil, "lint")
	wantCode(t, text, exitOK)
	golden(t, "lint_examples", text.Stdout)
}

func TestLintBadInput(t *testing.T) {
	wantCode(t, run(t, nil, "lint", t.TempDir()), exitUsage)                         // no migrations
	wantCode(t, run(t, nil, "lint", "testdata/does-not-exist"), exitUsage)           // no directory
	wantCode(t, run(t, nil, "lint", "-o", "yaml", "testdata/lint/rules"), exitUsage) // bad flag value
	wantCode(t, run(t, nil, "lint", "a", "b"), exitUsage)                            // too many arguments
}

func TestLintRulesList(t *testing.T) {
	r := run(t, nil, "lint", "--rules", "-o", "json")
	wantCode(t, r, exitOK)
	var rules []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rules); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rl := range rules {
		names = append(names, rl.Name)
	}
	for _, want := range []string{"drop-column", "drop-table", "rename-column", "rename-table", "change-column-type",
		"add-required-column", "set-not-null", "create-index-not-concurrently", "constraint-not-valid",
		"concurrently-in-transaction", "dml-after-ddl", "missing-down", "syntax-error", "transaction-control"} {
		if !slices.Contains(names, want) {
			t.Errorf("rule %s is not listed: %v", want, names)
		}
	}
}
