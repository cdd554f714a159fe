package pgtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// VersionRow reads schema_migrations directly: (version, dirty), or (-1, false) when the table
// or its row is missing. More than one row fails the test: golang-migrate's format has one.
func VersionRow(t testing.TB, c *pgx.Conn) (int, bool) {
	t.Helper()
	if !TableExists(t, c, "schema_migrations") {
		return -1, false
	}
	var n int
	var v int64
	var dirty bool
	err := c.QueryRow(context.Background(),
		"SELECT count(*), coalesce(max(version), -1), coalesce(bool_or(dirty), false) FROM schema_migrations").Scan(&n, &v, &dirty)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	if n > 1 {
		t.Fatalf("schema_migrations has %d rows, want at most 1", n)
	}
	return int(v), dirty
}

// HistoryVersions lists the history table's versions (nil when the table does not exist).
func HistoryVersions(t testing.TB, c *pgx.Conn) []int {
	t.Helper()
	if !TableExists(t, c, "schemahook_history") {
		return nil
	}
	rows, _ := c.Query(context.Background(), "SELECT version::int FROM schemahook_history ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("reading history: %v", err)
	}
	return vs
}

// TableExists reports whether a relation (table, index, view…) of that name is visible.
func TableExists(t testing.TB, c *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := c.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// Fingerprint describes everything a schemahook run could change in the database: every
// relation, column, index, constraint, the version and history rows, and the row count of
// every table. Two equal fingerprints mean the run changed nothing.
func Fingerprint(t testing.TB, c *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	q := func(sql string) {
		rows, err := c.Query(ctx, sql)
		if err != nil {
			t.Fatalf("fingerprint %q: %v", sql, err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("fingerprint %q: %v", sql, err)
		}
	}
	q(`SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 3`)
	q(`SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1`)
	q(`SELECT indexrelid::regclass::text, indisvalid FROM pg_index WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace) ORDER BY 1`)
	rows, _ := c.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		q("SELECT '" + tb + "', count(*) FROM " + tb)
	}
	for _, tb := range []string{"schema_migrations", "schemahook_history"} {
		if slices.Contains(tables, tb) {
			q("SELECT * FROM " + tb + " ORDER BY version")
		}
	}
	return b.String()
}
