package lint

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// rulesOf returns "line:rule" for each finding, in order.
func rulesOf(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, strings.Join([]string{itoa(f.Line), f.Rule}, ":"))
	}
	return out
}

func itoa(n int) string { return fmt.Sprintf("%02d", n) }

func TestStatementRules(t *testing.T) {
	cases := []struct {
		name, file, sql string
		want            []string
	}{
		{"new table is free", "1_a.up.sql", "CREATE TABLE t (a int);\nCREATE INDEX ON t (a);\nALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);\nALTER TABLE t DROP COLUMN a;\nDROP TABLE t;", nil},
		{"drop column", "1_a.up.sql", "ALTER TABLE t DROP COLUMN a;", []string{"01:" + RuleDropColumn}},
		{"drop column in down file", "1_a.down.sql", "ALTER TABLE t DROP COLUMN a;", nil},
		{"drop table", "1_a.up.sql", "DROP TABLE IF EXISTS public.t;", []string{"01:" + RuleDropTable}},
		{"rename column", "1_a.up.sql", "ALTER TABLE t RENAME COLUMN a TO b;", []string{"01:" + RuleRenameColumn}},
		{"rename table", "1_a.up.sql", "ALTER TABLE t RENAME TO u;", []string{"01:" + RuleRenameTable}},
		{"type change", "1_a.up.sql", "ALTER TABLE t ALTER COLUMN a TYPE bigint;", []string{"01:" + RuleChangeColumnType}},
		{"required column", "1_a.up.sql", "ALTER TABLE t ADD COLUMN a int NOT NULL;", []string{"01:" + RuleAddRequiredColumn}},
		{"required column with default", "1_a.up.sql", "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0;", nil},
		{"identity column", "1_a.up.sql", "ALTER TABLE t ADD COLUMN a int NOT NULL GENERATED ALWAYS AS IDENTITY;", nil},
		{"nullable column", "1_a.up.sql", "ALTER TABLE t ADD COLUMN a int;", nil},
		{"set not null", "1_a.up.sql", "ALTER TABLE t ALTER COLUMN a SET NOT NULL;", []string{"01:" + RuleSetNotNull}},
		{"index", "1_a.up.sql", "\n\n  CREATE UNIQUE INDEX i ON t (a);", []string{"03:" + RuleIndexNotConcurrent}},
		{"index in down file", "1_a.down.sql", "CREATE INDEX i ON t (a);", []string{"01:" + RuleIndexNotConcurrent}},
		{"concurrent index in transaction", "1_a.up.sql", "CREATE INDEX CONCURRENTLY i ON t (a);", []string{"01:" + RuleConcurrentlyInTransaction}},
		{"concurrent drop in transaction", "1_a.down.sql", "DROP INDEX CONCURRENTLY i;", []string{"01:" + RuleConcurrentlyInTransaction}},
		{"reindex concurrently in transaction", "1_a.up.sql", "REINDEX (CONCURRENTLY) TABLE t;", []string{"01:" + RuleConcurrentlyInTransaction}},
		{"concurrent index without transaction", "1_a.up.sql", "-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);", nil},
		{"foreign key", "1_a.up.sql", "ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (id);", []string{"01:" + RuleConstraintNotValid}},
		{"check", "1_a.up.sql", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);", []string{"01:" + RuleConstraintNotValid}},
		{"unique constraint is not this rule", "1_a.up.sql", "ALTER TABLE t ADD CONSTRAINT c UNIQUE (a);", nil},
		{"not valid then validate later", "1_a.up.sql", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;", nil},
		{"validate in the same transaction", "1_a.up.sql", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c;", []string{"02:" + RuleConstraintNotValid}},
		{"validate an older constraint", "1_a.up.sql", "ALTER TABLE t VALIDATE CONSTRAINT c;", nil},
		{"transaction control", "1_a.up.sql", "BEGIN;\nCREATE TABLE t (a int);\nSAVEPOINT s;\nRELEASE s;\nCOMMIT;",
			[]string{"01:" + RuleTransactionControl, "03:" + RuleTransactionControl, "04:" + RuleTransactionControl, "05:" + RuleTransactionControl}},
		{"transaction control in a down file", "1_a.down.sql", "DROP TABLE t;\n-- why\nEND;", []string{"03:" + RuleTransactionControl}},
		{"transaction control without a transaction", "1_a.up.sql", "-- schemahook:no-transaction\nBEGIN;\nCOMMIT;", nil},
		{"transaction control hidden in bodies", "1_a.up.sql",
			"DO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nCREATE TABLE t (\"begin\" int, \"end\" int);", nil},
		{"backfill after alter", "1_a.up.sql", "ALTER TABLE t ADD COLUMN b int;\nUPDATE t SET b = a;", []string{"02:" + RuleDMLAfterDDL}},
		{"insert and delete after index", "1_a.down.sql", "CREATE INDEX i ON t (a);\nINSERT INTO t VALUES (1);\nDELETE FROM public.t;",
			[]string{"01:" + RuleIndexNotConcurrent, "02:" + RuleDMLAfterDDL, "03:" + RuleDMLAfterDDL}},
		{"dml on another table", "1_a.up.sql", "ALTER TABLE t ADD COLUMN b int;\nUPDATE u SET b = 1;", nil},
		{"dml before ddl", "1_a.up.sql", "UPDATE t SET a = 1;\nALTER TABLE t ADD COLUMN b int;", nil},
		{"dml on a table created here", "1_a.up.sql", "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int;\nINSERT INTO t VALUES (1, 2);", nil},
		{"dml after validate", "1_a.up.sql", "ALTER TABLE t VALIDATE CONSTRAINT c;\nUPDATE t SET a = 1;", nil},
		{"backfill without a transaction", "1_a.up.sql", "-- schemahook:no-transaction\nALTER TABLE t ADD COLUMN b int;\nUPDATE t SET b = a;", nil},
		{"several commands", "1_a.up.sql", "ALTER TABLE t\n  DROP COLUMN a,\n  ALTER COLUMN b SET NOT NULL;", []string{"01:" + RuleDropColumn, "01:" + RuleSetNotNull}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := rulesOf(New().SQL(c.file, c.sql))
			if !slices.Equal(got, c.want) {
				t.Fatalf("%s\n%s\ngot %v, want %v", c.file, c.sql, got, c.want)
			}
		})
	}
}

func TestLintIgnore(t *testing.T) {
	sql := "ALTER TABLE t ADD COLUMN x int;\n" +
		"-- why: see below\n" +
		"-- schemahook:lint-ignore drop-column,set-not-null nothing reads b since v3\n" +
		"/* a block comment */\n" +
		"ALTER TABLE t DROP COLUMN b, ALTER COLUMN c SET NOT NULL;\n" +
		"ALTER TABLE t DROP COLUMN d;\n"
	r := New().SQL("1_a.up.sql", sql)
	if got, want := rulesOf(r), []string{"06:" + RuleDropColumn}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v (the directive covers only the statement right after it)", got, want)
	}
	want := []Silenced{
		{File: "1_a.up.sql", Line: 5, Rule: RuleDropColumn, Reason: "nothing reads b since v3"},
		{File: "1_a.up.sql", Line: 5, Rule: RuleSetNotNull, Reason: "nothing reads b since v3"},
	}
	if !slices.Equal(r.Silenced, want) {
		t.Fatalf("silenced %+v, want %+v", r.Silenced, want)
	}
}

func TestBadDirectives(t *testing.T) {
	sql := "-- schemahook:lint-ignore drop-column\n" +
		"-- schemahook:lint-ignore no-such-rule a reason\n" +
		"-- schemahook:lint-ignore syntax-error a reason\n" +
		"ALTER TABLE t DROP COLUMN a;\n"
	got := rulesOf(New().SQL("1_a.up.sql", sql))
	want := []string{"01:" + RuleInvalidDirective, "02:" + RuleInvalidDirective, "03:" + RuleInvalidDirective, "04:" + RuleDropColumn}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	// The multi-byte characters before the error check that PostgreSQL's character position is
	// not read as a byte offset.
	sql := "-- naïve café\nCREATE TABLE t (\n    ä int,\n    b int,,\n);\n"
	r := New().SQL("1_a.up.sql", sql)
	if len(r.Findings) != 1 {
		t.Fatalf("findings %+v, want one syntax error", r.Findings)
	}
	f := r.Findings[0]
	if f.Rule != RuleSyntaxError || f.Line != 4 || f.Column != 11 || f.Message != `syntax error at or near ","` {
		t.Fatalf("got %+v, want syntax-error at 4:11 saying syntax error at or near \",\"", f)
	}
}

func TestDirFileProblems(t *testing.T) {
	fsys := fstest.MapFS{
		"000001_a.up.sql":        {Data: []byte("CREATE TABLE a (id int);")},
		"000001_a.down.sql":      {Data: []byte("DROP TABLE a;")},
		"000002_b.up.sql":        {Data: []byte("CREATE TABLE b (id int);")},
		"000003_c.up.sql":        {Data: []byte("-- schemahook:irreversible\nCREATE TABLE c (id int);")},
		"000004_d.down.sql":      {Data: []byte("SELECT 1;")},
		"000005_e.up.sql":        {Data: []byte("SELECT 1;")},
		"000005_other.down.sql":  {Data: []byte("SELECT 1;")},
		"notes.sql":              {Data: []byte("SELECT 1;")},
		"README.md":              {Data: []byte("not a migration")},
		"000006_f.up.sql":        {Data: []byte("-- schemahook:irreversible\nSELECT 1;")},
		"000006_f.down.sql":      {Data: []byte("SELECT 1;")},
		"sub/000007_g.up.sql":    {Data: []byte("SELECT 1;")},
		"000008_h.up.sql":        {Data: []byte("SELECT 1;")},
		"000008_h.down.sql":      {Data: []byte("SELECT 1;")},
		"000009_syntax.up.sql":   {Data: []byte("SELEC 1;")},
		"000009_syntax.down.sql": {Data: []byte("SELECT 1;")},
		"000010_i.up.SQL":        {Data: []byte("SELECT 1;")},
	}
	r, err := New(WithLabel("db")).Dir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range r.Findings {
		got = append(got, f.File+":"+f.Rule)
	}
	want := []string{
		"db/000002_b.up.sql:" + RuleMissingDown,
		"db/000004_d.down.sql:" + RuleInvalidFile,
		"db/000005_e.up.sql:" + RuleMissingDown,
		"db/000005_other.down.sql:" + RuleInvalidFile,
		"db/000006_f.up.sql:" + RuleInvalidFile,
		"db/000009_syntax.up.sql:" + RuleSyntaxError,
		"db/000010_i.up.SQL:" + RuleInvalidFile,
		"db/notes.sql:" + RuleInvalidFile,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if r.Files != 14 {
		t.Fatalf("files = %d, want 14 (every .sql file at the top level)", r.Files)
	}
}

func TestDirEmpty(t *testing.T) {
	_, err := New().Dir(fstest.MapFS{"README.md": {Data: []byte("x")}}, ".")
	if err == nil {
		t.Fatal("an empty directory must be an error, not a clean report")
	}
}
