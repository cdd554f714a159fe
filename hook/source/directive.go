package source

import (
	"fmt"
	"slices"
	"strings"

	"github.com/schemahook/schemahook/hook/sqlsplit"
)

// Directives are comment lines of the form "-- schemahook:NAME [ARGS]". An unknown name is an
// error rather than ignored, because a misspelt "no-transaction" would otherwise run
// CREATE INDEX CONCURRENTLY inside a transaction and fail only at deploy time.
const (
	DirectivePrefix        = "schemahook:"
	DirectiveNoTransaction = "no-transaction"
	DirectiveIrreversible  = "irreversible"
	// DirectiveLintIgnore silences lint rules for the next statement; it must give a reason.
	DirectiveLintIgnore = "lint-ignore"
)

var knownDirectives = []string{DirectiveNoTransaction, DirectiveIrreversible, DirectiveLintIgnore}

// Directive is one parsed directive line.
type Directive struct {
	Name string
	Args string // the rest of the line, trimmed
	Line int    // 1-based
}

// Directives is the parsed set of a file.
type Directives []Directive

// Has reports whether a directive with the given name is present.
func (ds Directives) Has(name string) bool {
	return slices.ContainsFunc(ds, func(d Directive) bool { return d.Name == name })
}

// ParseDirectives finds directive lines in sql. Only whole-line "--" comments count; the
// prefix is case-sensitive like the rest of the name. Directives that take no arguments reject
// them, so "no-transaction please" is not silently accepted.
func ParseDirectives(sql string) (Directives, error) {
	var out Directives
	if !strings.Contains(sql, DirectivePrefix) {
		return nil, nil // most files: no line to look at
	}
	i := -1
	for line := range strings.Lines(sql) {
		i++
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(t, "--") {
			continue
		}
		body := strings.TrimSpace(strings.TrimPrefix(t, "--"))
		if !strings.HasPrefix(body, DirectivePrefix) {
			continue
		}
		name, args, _ := strings.Cut(strings.TrimPrefix(body, DirectivePrefix), " ")
		args = strings.TrimSpace(args)
		d := Directive{Name: name, Args: args, Line: i + 1}
		switch name {
		case DirectiveNoTransaction, DirectiveIrreversible:
			if args != "" {
				return nil, fmt.Errorf("line %d: directive %q takes no arguments, got %q", d.Line, DirectivePrefix+name, args)
			}
		case DirectiveLintIgnore:
			rule, reason, _ := strings.Cut(args, " ")
			if rule == "" || strings.TrimSpace(reason) == "" {
				return nil, fmt.Errorf("line %d: %q needs a rule and a reason, e.g. \"-- %s%s drop-column the column was unused since v2\"",
					d.Line, DirectivePrefix+name, DirectivePrefix, DirectiveLintIgnore)
			}
		default:
			return nil, fmt.Errorf("line %d: unknown directive %q (known: %s)", d.Line, DirectivePrefix+name, strings.Join(knownDirectives, ", "))
		}
		out = append(out, d)
	}
	return out, nil
}

// transactionControl returns what is wrong with a transactional file that controls the
// transaction itself, or nil. Such a file would end the transaction that also writes its
// version row: a COMMIT in it keeps what ran before it with no version recorded (a dirty
// database), and what follows it runs outside any transaction. It is refused before anything
// runs, for every command, because the catalog is what every command reads.
func transactionControl(f *File) error {
	if f.NoTransaction {
		return nil
	}
	for st := range sqlsplit.Statements(f.SQL) {
		if !sqlsplit.TransactionControl(st.SQL) {
			continue
		}
		// The statement's line is that of its leading comments; the keyword's is the one to fix.
		line := st.Line + strings.Count(st.SQL[:sqlsplit.SkipBlanks(st.SQL, 0)], "\n")
		w, rest := sqlsplit.Keyword(st.SQL)
		if w2, _ := sqlsplit.Keyword(rest); w2 != "" {
			w += " " + w2
		}
		return fmt.Errorf("%s:%d: %s: schemahook runs each migration file in a transaction of its own, committed together with its version row, "+
			"and a file that begins, ends or splits that transaction could leave the version dirty — remove the transaction control statements "+
			"(BEGIN, COMMIT, ROLLBACK, SAVEPOINT …) from the file, or mark it %q to run it statement by statement without a transaction",
			f.Name, line, w, "-- "+DirectivePrefix+DirectiveNoTransaction)
	}
	return nil
}
