package source

import (
	"fmt"
	"strings"

	"github.com/schemahook/schemahook/hook/sqlsplit"
)

// Warnings are about files that are valid but probably not what their author meant: a file
// that looks like a migration but is not read as one, a migration with no SQL in it. They do
// not stop a command (a stray file is not a broken schema), but each is logged, so a typo
// cannot drop a migration without a word.

// OnWarning calls f with each warning about the catalog's files: at once with those found so
// far, later with those found when the down files are read (see Open). f must be safe to call
// from the goroutine that reads them.
func (c *Catalog) OnWarning(f func(msg string)) {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	c.onWarning = f
	for _, w := range c.warnings {
		f(w)
	}
}

func (c *Catalog) warn(format string, a ...any) {
	if c == nil {
		return
	}
	msg := fmt.Sprintf(format, a...)
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	c.warnings = append(c.warnings, msg)
	if c.onWarning != nil {
		c.onWarning(msg)
	}
}

// Warnings returns the warnings found so far, in the order found.
func (c *Catalog) Warnings() []string {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	return append([]string(nil), c.warnings...)
}

// strayFile warns about a file Load skips (it does not end in .sql) when its name says it was
// meant as a migration (see NotAMigration).
func (c *Catalog) strayFile(name string) {
	if msg := NotAMigration(name); msg != "" {
		c.warn("%s", msg)
	}
}

// NotAMigration says why name, a file that does not end in .sql, is not read as a migration,
// when its name says it was meant as one: 000014_x.up.SQL, 000003_x.up.sql.orig left by a merge
// tool, 000005_x.down. It returns "" for the other files of a directory (README.md, embed.go):
// they are there on purpose.
func NotAMigration(name string) string {
	lower := strings.ToLower(name)
	digits := 0
	for digits < len(name) && name[digits] >= '0' && name[digits] <= '9' {
		digits++
	}
	numbered := digits > 0 && digits < len(name) && name[digits] == '_'
	if !numbered && !strings.Contains(lower, ".up.") && !strings.Contains(lower, ".down.") {
		return ""
	}
	hint := "migration files are named NNNNNN_name.up.sql and NNNNNN_name.down.sql; rename it if it is one, or move it out of the directory"
	for _, suffix := range []string{".up.sql", ".down.sql"} {
		if strings.HasSuffix(lower, suffix) {
			hint = fmt.Sprintf("the suffix is lower case: rename it to %s if it is one", name[:len(name)-len(suffix)]+suffix)
		}
	}
	return name + " is not read as a migration: " + hint
}

// emptyFile warns when a migration file holds no statement, only blanks and comments: it would
// be applied (or rolled back) and recorded without changing anything.
func (c *Catalog) emptyFile(name, sql string) {
	if sqlsplit.SkipBlanks(sql, 0) < len(sql) {
		return
	}
	c.warn("%s is empty (no SQL statement, only blanks or comments): it is applied and recorded without changing anything; write its SQL, or delete the migration if it is not needed", name)
}
