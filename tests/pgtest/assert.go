package pgtest

import (
	"context"
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
