package dbconn

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Translation is a golang-migrate database URL turned into what schemahook takes.
type Translation struct {
	// ConnString is the connection string for Config: postgres:// instead of pgx5:// or pgx://,
	// without golang-migrate's x- parameters (PostgreSQL would reject them as unknown settings).
	ConnString string
	// Flags are the schemahook flags the x- parameters stand for, by flag name, e.g.
	// "migrations-table" for x-migrations-table. Commands without such a flag ignore it.
	Flags map[string]string
	// Notes say what was translated, Warnings what was ignored, for a log line each; no
	// password in them.
	Notes, Warnings []string
}

// golang-migrate's PostgreSQL drivers: postgres:// (lib/pq), pgx:// (pgx v4 or v5, by build)
// and pgx5:// (pgx v5). All three take the same x- parameters (database/postgres and
// database/pgx/v5 Open).
var migrateSchemes = []string{"pgx5://", "pgx://"}

// TranslateMigrateURL accepts a connection string as golang-migrate's CLI and library take it
// and returns what it means to schemahook. Strings without golang-migrate's schemes or x-
// parameters come back unchanged with no flags. A parameter that has no exact equivalent is an
// ErrConfig error that says what to use instead. Messages never quote the string.
func TranslateMigrateURL(s string) (Translation, error) {
	t := Translation{ConnString: s, Flags: map[string]string{}}
	for _, scheme := range migrateSchemes {
		if rest, ok := strings.CutPrefix(s, scheme); ok {
			t.ConnString = "postgres://" + rest
			t.Notes = append(t.Notes, fmt.Sprintf("golang-migrate's %s URL scheme read as postgres://", strings.TrimSuffix(scheme, "://")))
			break
		}
	}
	rest, ok := strings.CutPrefix(t.ConnString, "postgres://")
	if !ok {
		if rest, ok = strings.CutPrefix(t.ConnString, "postgresql://"); !ok {
			return t, nil
		}
	}
	if err := ambiguousURL(t.ConnString); err != nil {
		return t, err
	}
	// The query starts at the first '?' after the user-info (which ends at the first '@'
	// unless a '/' comes first): a '?' in a percent-encoded password is no query.
	hostStart := 0
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		hostStart = i + 1
	}
	q := strings.IndexByte(rest[hostStart:], '?')
	if q < 0 {
		return t, nil
	}
	q += hostStart
	head := t.ConnString[:len(t.ConnString)-len(rest)] + rest[:q]
	var kept []string
	x := map[string]string{}
	for _, p := range strings.Split(rest[q+1:], "&") {
		k, v, _ := strings.Cut(p, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || !strings.HasPrefix(key, "x-") {
			kept = append(kept, p)
			continue
		}
		if val, err := url.QueryUnescape(v); err == nil {
			v = val
		}
		x[key] = v
	}
	if len(x) == 0 {
		return t, nil
	}
	t.ConnString = head
	if len(kept) > 0 {
		t.ConnString += "?" + strings.Join(kept, "&")
	}
	if err := t.translateParams(x); err != nil {
		return t, err
	}
	return t, nil
}

// quotedPartRE is one "…" part of x-migrations-table when x-migrations-table-quoted is on.
var quotedPartRE = regexp.MustCompile(`"(.*?)"`)

func (t *Translation) translateParams(x map[string]string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: golang-migrate URL parameter "+format, append([]any{ErrConfig}, a...)...)
	}
	boolParam := func(name string) (bool, error) {
		v, ok := x[name]
		if !ok || v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, bad("%s=%q: use true or false", name, v)
		}
		return b, nil
	}
	for name := range x {
		switch name {
		case "x-migrations-table", "x-migrations-table-quoted", "x-statement-timeout", "x-multi-statement", "x-multi-statement-max-size":
		default:
			return bad("%s is not one schemahook knows (it takes x-migrations-table, x-migrations-table-quoted, x-statement-timeout, x-multi-statement): remove it from the URL", name)
		}
	}
	quoted, err := boolParam("x-migrations-table-quoted")
	if err != nil {
		return err
	}
	if table := x["x-migrations-table"]; table != "" {
		if quoted {
			parts := quotedPartRE.FindAllStringSubmatch(table, -1)
			if table[0] != '"' || table[len(table)-1] != '"' || len(parts) == 0 {
				return bad("x-migrations-table=%s must be quoted (\"schema\".\"table\" or \"table\") when x-migrations-table-quoted is true, as golang-migrate requires", table)
			}
			if len(parts) > 1 {
				return bad("x-migrations-table=%s names a schema: schemahook keeps its version table in the connection's current schema (the first of search_path). "+
					"Use --migrations-table %s with a connection whose search_path starts with %s (e.g. options=-csearch_path%%3D%s in the URL), or move the table", table, parts[len(parts)-1][1], parts[0][1], parts[0][1])
			}
			table = parts[0][1]
		}
		t.Flags["migrations-table"] = table
		t.Notes = append(t.Notes, fmt.Sprintf("golang-migrate's x-migrations-table read as --migrations-table %s", table))
	}
	if v, ok := x["x-statement-timeout"]; ok && v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return bad("x-statement-timeout=%q: use milliseconds, e.g. x-statement-timeout=60000, or --statement-timeout 1m", v)
		}
		d := (time.Duration(ms) * time.Millisecond).String()
		t.Flags["statement-timeout"] = d
		t.Notes = append(t.Notes, "golang-migrate's x-statement-timeout read as --statement-timeout "+d)
	}
	multi, err := boolParam("x-multi-statement")
	if err != nil {
		return err
	}
	if multi {
		// golang-migrate then sends a file's statements one by one, each committing on its
		// own; schemahook runs a file in one transaction unless the file says otherwise.
		t.Warnings = append(t.Warnings, "golang-migrate's x-multi-statement ignored: schemahook sends each file whole, in a transaction; "+
			"mark files that must run statement by statement (CREATE INDEX CONCURRENTLY) with -- schemahook:no-transaction")
	}
	return nil
}
