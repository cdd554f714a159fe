// Package lint checks migration files before they deploy: it parses every file with
// PostgreSQL's own parser (libpg_query, compiled to WebAssembly so the binary stays static and
// CGO-free) and flags statements that break the release still serving during a pre-upgrade hook
// (dropping or renaming what it uses, changing types, new required columns) and statements that
// hold locks blocking an existing table's traffic (indexes built without CONCURRENTLY,
// constraints validated under a write lock, CONCURRENTLY inside a transaction). A statement can
// opt out of a rule with "-- schemahook:lint-ignore RULE reason" on the lines right before it.
package lint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	pgparser "github.com/wasilibs/go-pgquery/parser"

	"github.com/schemahook/schemahook/hook/source"
	"github.com/schemahook/schemahook/hook/sqlsplit"
)

// ErrFindings is returned (by the CLI) when a lint run reports findings.
var ErrFindings = errors.New("lint findings")

// Finding is one problem at one place.
type Finding struct {
	File    string `json:"file"`   // as displayed: the directory label joined with the file name
	Line    int    `json:"line"`   // 1-based
	Column  int    `json:"column"` // 1-based, in characters
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// Silenced is a finding a lint-ignore directive turned off, kept so reviews can see them.
type Silenced struct {
	File   string `json:"file"`
	Line   int    `json:"line"` // of the statement
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Report is the result of linting a directory. Lists are never nil, so JSON has arrays.
type Report struct {
	Files    int        `json:"files"`
	Findings []Finding  `json:"findings"`
	Silenced []Silenced `json:"silenced"`
}

// Err returns an error wrapping ErrFindings when the report has findings, else nil.
func (r *Report) Err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d in %d files", ErrFindings, len(r.Findings), r.Files)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// WriteText writes the report the way compilers do: file:line:col: rule: message, then the fix.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%s:%d:%d: %s: %s\n    fix: %s\n", f.File, f.Line, f.Column, f.Rule, f.Message, f.Fix)
	}
	silenced := ""
	if n := len(r.Silenced); n > 0 {
		silenced = fmt.Sprintf(" (%d silenced by lint-ignore)", n)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintf(&b, "no findings in %d files%s\n", r.Files, silenced)
	} else {
		fmt.Fprintf(&b, "%d %s in %d files%s\n", len(r.Findings), plural(len(r.Findings), "finding", "findings"), r.Files, silenced)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Linter lints migration files.
type Linter struct {
	label string
}

// Option configures a Linter.
type Option func(*Linter)

// WithLabel sets the directory name findings are reported under (default: none, bare file names).
func WithLabel(dir string) Option { return func(l *Linter) { l.label = dir } }

// New returns a Linter.
func New(opts ...Option) *Linter {
	l := &Linter{}
	for _, f := range opts {
		f(l)
	}
	return l
}

// Dir lints every *.sql file in dir of fsys. Unlike source.Load it does not stop at problems
// with the set of files (a missing down file, a bad name): those become findings, so one run
// reports everything. It returns an error wrapping source.ErrInvalid only when the directory
// cannot be read or has no .sql file at all (also source.ErrEmpty). Findings are sorted by file
// and position.
func (l *Linter) Dir(fsys fs.FS, dir string) (*Report, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: reading migrations directory %q: %w", source.ErrInvalid, dir, err)
	}
	rep := &Report{Findings: []Finding{}, Silenced: []Silenced{}}
	type pair struct {
		name     string
		up, down string // file names
		upSQL    string
	}
	byVersion := map[uint64]*pair{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			if msg := source.NotAMigration(e.Name()); msg != "" && !e.IsDir() {
				rep.add(l.finding(e.Name(), 1, 1, RuleInvalidFile, msg))
			}
			continue
		}
		name := e.Name()
		rep.Files++
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %w", source.ErrInvalid, name, err)
		}
		fn, ok := source.ParseFileName(name)
		var v uint64
		if ok {
			v, err = strconv.ParseUint(fn.Version, 10, 64)
		}
		if !ok || err != nil {
			rep.add(l.finding(name, 1, 1, RuleInvalidFile, "the file name must look like 000001_create_users.up.sql (or .down.sql) with a version that fits 64 bits; golang-migrate would skip this file silently"))
			continue
		}
		p := byVersion[v]
		if p == nil {
			p = &pair{name: fn.Name}
			byVersion[v] = p
		}
		up := fn.Up
		switch {
		case p.name != fn.Name:
			rep.add(l.finding(name, 1, 1, RuleInvalidFile, fmt.Sprintf("version %d is also used by %q: each version needs exactly one name", v, p.name)))
			continue
		case up && p.up != "", !up && p.down != "":
			rep.add(l.finding(name, 1, 1, RuleInvalidFile, fmt.Sprintf("duplicate %s file for version %d", map[bool]string{true: "up", false: "down"}[up], v)))
			continue
		case up:
			p.up, p.upSQL = name, string(body)
		default:
			p.down = name
		}
		l.file(rep, name, string(body), up)
	}
	if rep.Files == 0 {
		return nil, fmt.Errorf("%w: %w in %s: expected files like 000001_init.up.sql", source.ErrInvalid, source.ErrEmpty, l.display(dir))
	}
	for _, p := range byVersion {
		irreversible := hasDirective(p.upSQL, source.DirectiveIrreversible)
		switch {
		case p.up == "":
			rep.add(l.finding(p.down, 1, 1, RuleInvalidFile, "down file without an up file"))
		case p.down == "" && !irreversible:
			rep.add(l.finding(p.up, 1, 1, RuleMissingDown, fmt.Sprintf("%s has no down file %s", p.up, strings.TrimSuffix(p.up, ".up.sql")+".down.sql")))
		case p.down != "" && irreversible:
			rep.add(l.finding(p.up, 1, 1, RuleInvalidFile, fmt.Sprintf("marked irreversible but %s exists: remove one of them", p.down)))
		}
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return rep, nil
}

// SQL lints one file's contents. name decides whether it is an up or a down file. It is Dir
// without the checks that need the other files.
func (l *Linter) SQL(name, sql string) *Report {
	rep := &Report{Files: 1, Findings: []Finding{}, Silenced: []Silenced{}}
	l.file(rep, name, sql, !strings.HasSuffix(name, ".down.sql"))
	return rep
}

func (r *Report) add(f Finding) { r.Findings = append(r.Findings, f) }

func (l *Linter) display(name string) string {
	if l.label == "" {
		return name
	}
	return path.Join(l.label, name)
}

func (l *Linter) finding(file string, line, col int, rule, msg string) Finding {
	fix := ""
	if ri := Lookup(rule); ri != nil {
		fix = ri.Fix
	}
	return Finding{File: l.display(file), Line: line, Column: col, Rule: rule, Message: msg, Fix: fix}
}

// hasDirective reports whether sql has a valid directive name; malformed lines are reported
// by file() and do not count.
func hasDirective(sql, name string) bool {
	for _, line := range strings.Split(sql, "\n") {
		if ds, err := source.ParseDirectives(line); err == nil && ds.Has(name) {
			return true
		}
	}
	return false
}

// fileState is what the checks of one file know.
type fileState struct {
	up            bool
	noTransaction bool
	created       map[string]bool // tables created earlier in this file: no old release uses them yet
	notValid      map[string]bool // constraints added NOT VALID earlier in this file, by table.name
	// locked are existing tables whose DDL earlier in this file holds a lock until the file's
	// transaction commits, with the statement that took it.
	locked map[string]string
}

// file lints one file: its directives, its syntax, then every statement.
func (l *Linter) file(rep *Report, name, sql string, up bool) {
	st := &fileState{up: up, created: map[string]bool{}, notValid: map[string]bool{}, locked: map[string]string{}}
	// Directives line by line, so that one malformed line is reported where it is and the rest
	// still count.
	for i, line := range strings.Split(sql, "\n") {
		ds, err := source.ParseDirectives(line)
		if err != nil {
			rep.add(l.finding(name, i+1, 1, RuleInvalidDirective, strings.TrimPrefix(err.Error(), "line 1: ")))
			continue
		}
		if ds.Has(source.DirectiveNoTransaction) {
			st.noTransaction = true
		}
		for _, d := range ds {
			if d.Name != source.DirectiveLintIgnore {
				continue
			}
			for _, r := range ignoredRules(d) {
				if ri := Lookup(r); ri == nil || !ri.Silence {
					rep.add(l.finding(name, i+1, 1, RuleInvalidDirective, fmt.Sprintf("lint-ignore names %q, which is not a rule that can be silenced (rules: %s)", r, silenceable())))
				}
			}
		}
	}
	tree, err := parse(sql)
	if err != nil {
		line, col := 1, 1
		var pe *pgparser.Error
		if errors.As(err, &pe) && pe.Cursorpos > 0 {
			line, col = position(sql, charOffset(sql, pe.Cursorpos-1))
		}
		rep.add(l.finding(name, line, col, RuleSyntaxError, err.Error()))
		return
	}
	for _, raw := range tree.Stmts {
		loc := raw.StmtLocation
		start := sqlsplit.SkipBlanks(sql, loc)
		line, col := position(sql, start)
		ignores := map[string]string{}
		for _, l := range strings.Split(sql[loc:start], "\n") {
			ds, _ := source.ParseDirectives(l)
			for _, d := range ds {
				if d.Name == source.DirectiveLintIgnore {
					_, reason, _ := strings.Cut(d.Args, " ")
					for _, r := range ignoredRules(d) {
						ignores[r] = strings.TrimSpace(reason)
					}
				}
			}
		}
		if raw.Stmt.TransactionStmt != nil && !st.noTransaction {
			w, rest := sqlsplit.Keyword(sql[start:])
			if w2, _ := sqlsplit.Keyword(rest); w2 != "" {
				w += " " + w2
			}
			rep.add(l.finding(name, line, col, RuleTransactionControl,
				w+" in a file that runs in a transaction: it would end or split the transaction that also records the version, so update, plan, check and status refuse the file"))
		}
		for _, p := range st.check(&raw.Stmt) {
			if reason, ok := ignores[p.rule]; ok {
				rep.Silenced = append(rep.Silenced, Silenced{File: l.display(name), Line: line, Rule: p.rule, Reason: reason})
				continue
			}
			rep.add(l.finding(name, line, col, p.rule, p.msg))
		}
	}
}

func ignoredRules(d source.Directive) []string {
	rules, _, _ := strings.Cut(d.Args, " ")
	return strings.Split(rules, ",")
}

func silenceable() string {
	var names []string
	for _, r := range Rules {
		if r.Silence {
			names = append(names, r.Name)
		}
	}
	return strings.Join(names, ", ")
}

type problem struct{ rule, msg string }

// check applies the statement rules to one statement and records what it creates.
func (st *fileState) check(n *node) []problem {
	var out []problem
	add := func(rule, format string, a ...any) { out = append(out, problem{rule, fmt.Sprintf(format, a...)}) }
	concurrently := func(what string) {
		if !st.noTransaction {
			add(RuleConcurrentlyInTransaction, "%s inside a transaction: PostgreSQL refuses it (SQLSTATE 25001), so this migration would fail at deploy time", what)
		}
	}
	lock := func(rel, stmt string) {
		if !st.noTransaction && !st.created[rel] && st.locked[rel] == "" {
			st.locked[rel] = stmt
		}
	}
	dml := func(verb string, d *dmlStmt) {
		if ddl := st.locked[d.Relation.Relname]; ddl != "" {
			add(RuleDMLAfterDDL, "%s %s after %s %s in the same transaction: that lock is held until the commit, so every query on %s waits for this statement to finish",
				verb, d.Relation.Relname, ddl, d.Relation.Relname, d.Relation.Relname)
		}
	}
	switch {
	case n.InsertStmt != nil:
		dml("INSERT INTO", n.InsertStmt)
	case n.UpdateStmt != nil:
		dml("UPDATE", n.UpdateStmt)
	case n.DeleteStmt != nil:
		dml("DELETE FROM", n.DeleteStmt)
	case n.CreateStmt != nil:
		st.created[n.CreateStmt.Relation.Relname] = true
	case n.CreateTableAsStmt != nil:
		st.created[n.CreateTableAsStmt.Into.Rel.Relname] = true
	case n.IndexStmt != nil:
		ix := n.IndexStmt
		if ix.Concurrent {
			concurrently("CREATE INDEX CONCURRENTLY")
		} else if !st.created[ix.Relation.Relname] {
			lock(ix.Relation.Relname, "CREATE INDEX on")
			add(RuleIndexNotConcurrent, "CREATE INDEX %son existing table %s without CONCURRENTLY blocks writes to it until the index is built",
				optName(ix.Idxname), ix.Relation.Relname)
		}
	case n.DropStmt != nil:
		d := n.DropStmt
		if d.Concurrent {
			concurrently("DROP INDEX CONCURRENTLY")
		}
		if st.up && d.RemoveType == "OBJECT_TABLE" {
			for _, obj := range d.Objects {
				if t := obj.lastName(); !st.created[t] {
					add(RuleDropTable, "DROP TABLE %s: the release still serving during pre-upgrade uses this table", t)
				}
			}
		}
	case n.RenameStmt != nil:
		r := n.RenameStmt
		rel := r.Relation.Relname
		switch {
		case !st.up || st.created[rel]:
		case r.RenameType == "OBJECT_TABLE":
			add(RuleRenameTable, "ALTER TABLE %s RENAME TO %s: the release still serving during pre-upgrade uses the old name", rel, r.Newname)
		case r.RenameType == "OBJECT_COLUMN" && r.RelationType == "OBJECT_TABLE":
			add(RuleRenameColumn, "ALTER TABLE %s RENAME COLUMN %s TO %s: the release still serving during pre-upgrade uses the old name", rel, r.Subname, r.Newname)
		}
	case n.ReindexStmt != nil:
		for _, p := range n.ReindexStmt.Params {
			if p.DefElem != nil && strings.EqualFold(p.DefElem.Defname, "concurrently") {
				concurrently("REINDEX CONCURRENTLY")
			}
		}
	case n.AlterTableStmt != nil:
		a := n.AlterTableStmt
		rel := a.Relation.Relname
		if a.Objtype != "OBJECT_TABLE" || st.created[rel] {
			break
		}
		for _, c := range a.Cmds {
			cmd := c.AlterTableCmd
			if cmd == nil {
				continue
			}
			// VALIDATE CONSTRAINT alone takes SHARE UPDATE EXCLUSIVE, which lets DML through.
			if cmd.Subtype != "AT_ValidateConstraint" {
				lock(rel, "ALTER TABLE")
			}
			switch cmd.Subtype {
			case "AT_DropColumn":
				if st.up {
					add(RuleDropColumn, "ALTER TABLE %s DROP COLUMN %s: the release still serving during pre-upgrade reads or writes this column", rel, cmd.Name)
				}
			case "AT_AlterColumnType":
				if st.up && cmd.Def != nil && cmd.Def.ColumnDef != nil {
					add(RuleChangeColumnType, "ALTER TABLE %s ALTER COLUMN %s TYPE %s: the old release's queries may break and the table is rewritten under an ACCESS EXCLUSIVE lock",
						rel, cmd.Name, cmd.Def.ColumnDef.TypeName.String())
				}
			case "AT_SetNotNull":
				if st.up {
					add(RuleSetNotNull, "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL: the old release's writes that leave it empty fail, and the check scans the table under an ACCESS EXCLUSIVE lock", rel, cmd.Name)
				}
			case "AT_AddColumn":
				if st.up && cmd.Def != nil && cmd.Def.ColumnDef != nil && cmd.Def.ColumnDef.requiredWithoutDefault() {
					add(RuleAddRequiredColumn, "ALTER TABLE %s ADD COLUMN %s ... NOT NULL without a DEFAULT: fails on a populated table, and the old release's INSERTs do not set it", rel, cmd.Def.ColumnDef.Colname)
				}
			case "AT_AddConstraint":
				if cmd.Def == nil || cmd.Def.Constraint == nil {
					break
				}
				con := cmd.Def.Constraint
				kind := map[string]string{"CONSTR_FOREIGN": "FOREIGN KEY", "CONSTR_CHECK": "CHECK"}[con.Contype]
				switch {
				case kind == "":
				case con.SkipValidation:
					st.notValid[rel+"."+con.Conname] = true
				default:
					add(RuleConstraintNotValid, "ALTER TABLE %s ADD %s%s without NOT VALID scans the whole table while holding a lock that blocks writes", rel, optConstraint(con.Conname), kind)
				}
			case "AT_ValidateConstraint":
				if st.notValid[rel+"."+cmd.Name] && !st.noTransaction {
					add(RuleConstraintNotValid, "ALTER TABLE %s VALIDATE CONSTRAINT %s in the same transaction that added it NOT VALID: the ADD's lock is held during the scan, as if NOT VALID were not there", rel, cmd.Name)
				}
			}
		}
	}
	return out
}

func optName(n string) string {
	if n == "" {
		return ""
	}
	return n + " "
}

func optConstraint(n string) string {
	if n == "" {
		return ""
	}
	return "CONSTRAINT " + n + " "
}

// charOffset converts a 0-based character index (PostgreSQL reports positions in characters)
// into a byte offset of s.
func charOffset(s string, chars int) int {
	b := 0
	for i := 0; i < chars && b < len(s); i++ {
		_, n := utf8.DecodeRuneInString(s[b:])
		b += n
	}
	return b
}

// position converts a byte offset of s into a 1-based line and character column.
func position(s string, off int) (line, col int) {
	off = min(off, len(s))
	before := s[:off]
	line = 1 + strings.Count(before, "\n")
	col = 1 + utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:])
	return line, col
}
