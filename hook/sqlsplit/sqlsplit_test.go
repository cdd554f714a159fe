package sqlsplit

import (
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		name   string
		script string
		want   []string
	}{
		{"plain", "SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"no trailing semicolon", "SELECT 1;\nSELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"semicolon in string", "SELECT 'a;b'; SELECT 2", []string{"SELECT 'a;b'", "SELECT 2"}},
		{"doubled quote", "SELECT 'it''s;'; SELECT 2", []string{"SELECT 'it''s;'", "SELECT 2"}},
		{"E string backslash", `SELECT E'\';'; SELECT 2`, []string{`SELECT E'\';'`, "SELECT 2"}},
		{"plain string backslash is literal", `SELECT 'a\'; SELECT 2`, []string{`SELECT 'a\'`, "SELECT 2"}},
		{"identifier", `CREATE TABLE "a;b" (x int); SELECT 2`, []string{`CREATE TABLE "a;b" (x int)`, "SELECT 2"}},
		{"dollar body", "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 2",
			[]string{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT 2"}},
		{"tagged dollar", "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 2", []string{"DO $body$ BEGIN PERFORM 1; END $body$", "SELECT 2"}},
		{"param is not a quote", "PREPARE p AS SELECT $1; SELECT 2", []string{"PREPARE p AS SELECT $1", "SELECT 2"}},
		{"line comment", "-- a; b\nSELECT 1; -- c;\n", []string{"-- a; b\nSELECT 1"}},
		{"nested block comment", "/* a /* b; */ c; */ SELECT 1; SELECT 2", []string{"/* a /* b; */ c; */ SELECT 1", "SELECT 2"}},
		{"comment only", "-- schemahook:no-transaction\n;\n/* x */;", nil},
		{"empty statements", ";;  ;", nil},
		{"unterminated string", "SELECT 'abc; SELECT 2", []string{"SELECT 'abc; SELECT 2"}},
		// Names may contain '$': PostgreSQL reads "a$$b$" as one name, not a dollar quote.
		{"dollar in names", "SELECT 1 AS a$$b$; COMMIT; SELECT 2 AS c$b$", []string{"SELECT 1 AS a$$b$", "COMMIT", "SELECT 2 AS c$b$"}},
		{"dollar quote after a number or parameter", "SELECT 1$$;$$; SELECT $1$$;$$; SELECT 2", []string{"SELECT 1$$;$$", "SELECT $1$$;$$", "SELECT 2"}},
		// SQL-standard bodies: their semicolons are the body's; CASE … END nests inside them.
		{"begin atomic", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
			[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END", "SELECT 3"}},
		{"begin atomic, or replace procedure", "create or replace procedure p() language sql begin atomic insert into t values (1); end;\nCOMMIT",
			[]string{"create or replace procedure p() language sql begin atomic insert into t values (1); end", "COMMIT"}},
		{"begin atomic after a comment", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN /* x */ ATOMIC SELECT t.end FROM t; END; SELECT 3",
			[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN /* x */ ATOMIC SELECT t.end FROM t; END", "SELECT 3"}},
		{"keywords as column labels", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS case, 2 AS \"end\"; END; COMMIT",
			[]string{`CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS case, 2 AS "end"; END`, "COMMIT"}},
		{"case as a bare label", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 case; SELECT 2 case, 3 case FROM t; END; COMMIT",
			[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 case; SELECT 2 case, 3 case FROM t; END", "COMMIT"}},
		{"a function named begin opens no body", "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; COMMIT",
			[]string{"CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1", "COMMIT"}},
		{"begin outside a routine", "CREATE TABLE b (begin int, \"atomic\" int); BEGIN; END",
			[]string{`CREATE TABLE b (begin int, "atomic" int)`, "BEGIN", "END"}},
		{"quote after a name ending in e", `SELECT a$e'\'; SELECT xe'\'; SELECT 2`, []string{`SELECT a$e'\'`, `SELECT xe'\'`, "SELECT 2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.script)
			var sqls []string
			for _, s := range got {
				sqls = append(sqls, s.SQL)
				if tc.script[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
					t.Errorf("offset %d does not point at %q", s.Offset, s.SQL)
				}
			}
			if strings.Join(sqls, "|") != strings.Join(tc.want, "|") || len(sqls) != len(tc.want) {
				t.Fatalf("Split(%q) = %q, want %q", tc.script, sqls, tc.want)
			}
		})
	}
}

func TestSplitLines(t *testing.T) {
	got := Split("-- header\nCREATE TABLE a (x int);\n\n  CREATE INDEX CONCURRENTLY i ON a (x);\n")
	if len(got) != 2 || got[0].Line != 1 || got[1].Line != 4 {
		t.Fatalf("lines: %+v", got)
	}
}

// FuzzSplit checks invariants that must hold for any input: statements are in order, do not
// overlap, point at their text, and concatenating them loses no non-separator content.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT 2", "SELECT 'a;b'", "$$;$$;", "/* /* */ */;", "E'\\'';", `"";`, "$a$ $b$ ; $a$;", "-- x\n;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		prevEnd := 0
		for _, s := range Split(script) {
			if s.Offset < prevEnd || s.Offset+len(s.SQL) > len(script) {
				t.Fatalf("statement %+v out of order or range (prevEnd %d, len %d)", s, prevEnd, len(script))
			}
			if script[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
				t.Fatalf("offset mismatch for %+v", s)
			}
			if s.SQL == "" || s.Line != 1+strings.Count(script[:s.Offset], "\n") {
				t.Fatalf("bad statement %+v", s)
			}
			prevEnd = s.Offset + len(s.SQL)
		}
	})
}

func TestSkipBlanks(t *testing.T) {
	s := "  -- c\n /* a /* nested */ b */\n\tSELECT 1"
	if got := SkipBlanks(s, 0); s[got:] != "SELECT 1" {
		t.Fatalf("SkipBlanks stopped at %q", s[got:])
	}
	if got := SkipBlanks("-- only\n/* comments */ ", 0); got != len("-- only\n/* comments */ ") {
		t.Fatalf("SkipBlanks over blanks only = %d", got)
	}
}

func TestUnterminated(t *testing.T) {
	cases := []struct {
		script string
		want   bool
	}{
		{"", false},
		{"SELECT 1", false},
		{"SELECT 'a''b';", false},
		{"SELECT 'a'''", false},
		{"SELECT 'a''", true},
		{"SELECT 'a", true},
		{`SELECT 'a\'`, false},
		{`SELECT E'a\'`, true},
		{`SELECT e'a\\'`, false},
		{`SELECT "a""`, true},
		{`SELECT 1 AS "a"`, false},
		{"SELECT $$ a", true},
		{"SELECT $t$ a $t", true},
		{"SELECT $t$ a $t$", false},
		{"SELECT 1 AS a$$b$", false},
		{"SELECT $1", false},
		{"/* a /* b */", true},
		{"/* a /* b */ */", false},
		{"/*/", true},
		{"SELECT 1 -- no newline", false},
		{"SELECT 1 -- it's", false},
	}
	for _, tc := range cases {
		if got := Unterminated(tc.script); got != tc.want {
			t.Errorf("Unterminated(%q) = %t, want %t", tc.script, got, tc.want)
		}
	}
}

func TestTransactionControl(t *testing.T) {
	for stmt, want := range map[string]bool{
		"BEGIN": true, "begin transaction isolation level serializable": true, "START TRANSACTION": true,
		"COMMIT": true, "commit and chain": true, "END": true, "ROLLBACK": true, "ROLLBACK TO SAVEPOINT a": true,
		"ABORT": true, "SAVEPOINT a": true, "RELEASE a": true, "RELEASE SAVEPOINT a": true,
		"PREPARE TRANSACTION 'x'": true, "COMMIT PREPARED 'x'": true, "ROLLBACK PREPARED 'x'": true,
		"-- why\n/* and */ COMMIT": true,
		"PREPARE p AS SELECT 1":    false, "DO $$ BEGIN PERFORM 1; END $$": false, "SELECT 1 AS end": false,
		"UPDATE t SET begin = 1": false, "begin_x": false, "end2": false, "CREATE TABLE begin (x int)": false,
		"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE": false,
	} {
		if got := TransactionControl(stmt); got != want {
			t.Errorf("TransactionControl(%q) = %t, want %t", stmt, got, want)
		}
	}
}
