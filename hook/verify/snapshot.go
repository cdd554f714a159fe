package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Snapshot is a normalized description of a database schema: one line per object or
// attribute, sorted, with no OIDs, positions or other values that differ between two databases
// holding the same schema. Two snapshots are equal exactly when their lines are.
type Snapshot struct {
	Lines []string
}

// Equal reports whether s and o describe the same schema.
func (s Snapshot) Equal(o Snapshot) bool { return slices.Equal(s.Lines, o.Lines) }

// Diff returns the lines only in want prefixed with "- " and the lines only in got prefixed with
// "+ ", in one sorted sequence so that a changed object shows its old and new line next to each
// other. Equal snapshots give an empty slice.
func Diff(want, got Snapshot) []string {
	var out []string
	i, j := 0, 0
	for i < len(want.Lines) || j < len(got.Lines) {
		switch {
		case j == len(got.Lines) || (i < len(want.Lines) && want.Lines[i] < got.Lines[j]):
			out = append(out, "- "+want.Lines[i])
			i++
		case i == len(want.Lines) || got.Lines[j] < want.Lines[i]:
			out = append(out, "+ "+got.Lines[j])
			j++
		default:
			i++
			j++
		}
	}
	return out
}

// TakeSnapshot reads the schema of the database conn is connected to: schemas, extensions,
// tables, columns (type, nullability, default, identity, generation, collation), constraints,
// indexes (with validity), sequences, views, functions, triggers, enums and domains. Objects
// in system schemas, objects that belong to an extension, and the tables named in exclude
// (schemahook's own; resolved through the search_path) with everything attached to them are
// left out. Privileges, ownership, comments, statistics and data are not part of it. Each line
// has its runs of whitespace collapsed (function bodies and view definitions included), so a
// reformatted body compares equal.
//
// Column order is deliberately not compared: a down migration that re-adds a column dropped by
// its up file cannot put it back in its old position (PostgreSQL only appends), and the result
// is the same schema for every query that names its columns.
func TakeSnapshot(ctx context.Context, conn *pgx.Conn, exclude ...string) (Snapshot, error) {
	if exclude == nil {
		exclude = []string{}
	}
	var lines []string
	for _, q := range snapshotQueries() {
		var args []any
		if strings.Contains(q.sql, "$1") { // the extended protocol wants exactly the parameters used
			args = append(args, exclude)
		}
		rows, err := conn.Query(ctx, q.sql, args...)
		if err != nil {
			return Snapshot{}, fmt.Errorf("reading %s from the catalog: %w", q.what, err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return Snapshot{}, fmt.Errorf("reading %s from the catalog: %w", q.what, err)
		}
		for _, l := range got {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	slices.Sort(lines)
	return Snapshot{Lines: lines}, nil
}

// Shared SQL fragments. $1 is the array of excluded table names, resolved to OIDs (names that
// do not resolve are dropped: a NULL in the array would make every "<> ALL" test unknown).
// Members of extensions are left out because the extension is listed as one line instead.
const (
	userSchema = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'`
	excluded   = `coalesce((SELECT array_agg(r::oid) FROM unnest($1::text[]) x, to_regclass(x) r WHERE r IS NOT NULL), '{}'::oid[])`
)

func notExtensionMember(catalog, oid string) string {
	return fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '%s'::regclass AND e.objid = %s AND e.deptype = 'e')`, catalog, oid)
}

// snapshotQueries are built on first use: every schemahook run initializes this package, and
// only verify needs them.
var snapshotQueries = sync.OnceValue(func() []struct{ what, sql string } {
	// relFilter keeps user relations that are not excluded and not part of an extension.
	relFilter := userSchema + ` AND NOT (c.oid = ANY (` + excluded + `)) AND ` + notExtensionMember("pg_class", "c.oid")
	return []struct{ what, sql string }{
		{"schemas", `SELECT format('schema %I', n.nspname) FROM pg_namespace n WHERE ` + userSchema + ` AND ` + notExtensionMember("pg_namespace", "n.oid")},
		{"extensions", `SELECT format('extension %I in schema %I', x.extname, n.nspname) FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace`},
		{"relations", `SELECT format('%s %I.%I%s%s%s%s',
			CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
				WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type' END,
			n.nspname, c.relname,
			CASE WHEN c.relpersistence = 'u' THEN ' unlogged' ELSE '' END,
			CASE WHEN c.relkind = 'p' THEN ' partition by ' || pg_get_partkeydef(c.oid) ELSE '' END,
			CASE WHEN c.relispartition THEN ' partition of ' || (SELECT format('%I.%I', pn.nspname, pc.relname) FROM pg_inherits i
				JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid)
				|| ' ' || pg_get_expr(c.relpartbound, c.oid) ELSE '' END,
			CASE WHEN c.relkind IN ('v', 'm') THEN ' as ' || pg_get_viewdef(c.oid, true) ELSE '' END)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND ` + relFilter + `
		  AND (c.relkind <> 'c' OR NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_depend e ON e.classid = 'pg_type'::regclass
			AND e.objid = t.oid AND e.deptype = 'e' WHERE t.typrelid = c.oid))`},
		{"columns", `SELECT format('column %I.%I.%I %s%s%s%s%s%s', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
			CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
			CASE WHEN a.atthasdef AND a.attgenerated = '' THEN ' default ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
			CASE a.attidentity WHEN 'a' THEN ' generated always as identity' WHEN 'd' THEN ' generated by default as identity' ELSE '' END,
			CASE WHEN a.attgenerated = 's' THEN ' generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored' ELSE '' END,
			CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN ' collate ' || quote_ident(co.collname) ELSE '' END,
			CASE WHEN a.attstorage <> t.typstorage THEN ' storage ' || a.attstorage::text ELSE '' END)
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		LEFT JOIN pg_collation co ON co.oid = a.attcollation
		WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND ` + relFilter},
		{"constraints", `SELECT format('constraint %I.%I %I %s', n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid, true))
		FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE ` + relFilter},
		{"indexes", `SELECT format('index %I.%I %s%s', n.nspname, ic.relname, pg_get_indexdef(i.indexrelid),
			CASE WHEN NOT i.indisvalid THEN ' INVALID' ELSE '' END)
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = ic.relnamespace
		WHERE ` + relFilter},
		{"sequences", `SELECT format('sequence %I.%I %s start %s increment %s min %s max %s cache %s%s%s', n.nspname, c.relname,
			format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
			CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END,
			coalesce((SELECT format(' owned by %I.%I.%I', tn.nspname, tc.relname, ta.attname) FROM pg_depend dep
				JOIN pg_class tc ON tc.oid = dep.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
				JOIN pg_attribute ta ON ta.attrelid = dep.refobjid AND ta.attnum = dep.refobjsubid
				WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.refclassid = 'pg_class'::regclass
				  AND dep.deptype IN ('a', 'i') LIMIT 1), ''))
		FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE ` + relFilter + `
		  AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
			AND dep.refobjid = ANY (` + excluded + `))`},
		{"functions", `SELECT format('%s %I.%I(%s)%s language %s %s%s%s as %s',
			CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function' ELSE 'function' END,
			n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
			coalesce(' returns ' || pg_get_function_result(p.oid), ''), l.lanname,
			CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
			CASE WHEN p.proisstrict THEN ' strict' ELSE '' END,
			CASE WHEN p.prosecdef THEN ' security definer' ELSE '' END,
			coalesce(p.probin || ' ', '') || coalesce(p.prosrc, ''))
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
		WHERE ` + userSchema + ` AND ` + notExtensionMember("pg_proc", "p.oid")},
		{"triggers", `SELECT format('trigger %I.%I %s%s', n.nspname, c.relname, pg_get_triggerdef(t.oid, true),
			CASE t.tgenabled WHEN 'D' THEN ' disabled' WHEN 'R' THEN ' enabled replica' WHEN 'A' THEN ' enabled always' ELSE '' END)
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT t.tgisinternal AND ` + relFilter},
		{"enums", `SELECT format('enum %I.%I (%s)', n.nspname, t.typname,
			(SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE t.typtype = 'e' AND ` + userSchema + ` AND ` + notExtensionMember("pg_type", "t.oid")},
		{"domains", `SELECT format('domain %I.%I %s%s%s%s', n.nspname, t.typname, format_type(t.typbasetype, t.typtypmod),
			CASE WHEN t.typnotnull THEN ' not null' ELSE '' END,
			coalesce(' default ' || t.typdefault, ''),
			coalesce((SELECT ' ' || string_agg(format('constraint %I %s', con.conname, pg_get_constraintdef(con.oid, true)), ' ' ORDER BY con.conname)
				FROM pg_constraint con WHERE con.contypid = t.oid), ''))
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE t.typtype = 'd' AND ` + userSchema + ` AND ` + notExtensionMember("pg_type", "t.oid")},
	}
})
