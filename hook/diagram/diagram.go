// Package diagram reads the tables, columns and keys of a live PostgreSQL schema and renders them
// as a Mermaid erDiagram, with relationships derived from foreign keys and their cardinality from
// NOT NULL and unique constraints.
package diagram

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Schema is what the diagram shows.
type Schema struct {
	Tables    []*Table    // sorted by schema, then name
	Relations []*Relation // sorted by parent, child, constraint
}

// Table is one table (partitions are shown through their parent only).
type Table struct {
	Schema, Name string
	Columns      []*Column // in table order
}

// Column is one column with its key markers.
type Column struct {
	Name    string
	Type    string // as format_type renders it, e.g. "timestamp with time zone"
	NotNull bool
	PK      bool // part of the primary key
	FK      bool // part of a foreign key
	Unique  bool // a unique constraint or plain unique index covers exactly this column
}

// Relation is one foreign key: Child(Columns) references Parent.
type Relation struct {
	Parent, Child *Table
	Constraint    string
	Columns       []string // the child's referencing columns
	// Required: every referencing column is NOT NULL, so each child row has exactly one parent
	// (otherwise zero or one).
	Required bool
	// OneToOne: the referencing columns are unique in the child (primary key, unique constraint
	// or unique index on exactly them), so a parent has at most one child (otherwise many).
	OneToOne bool
	// Identifying: the referencing columns are part of the child's primary key.
	Identifying bool
}

// Read reads the schema of the database conn is connected to: every ordinary and partitioned
// table outside the system schemas, except tables that belong to an extension and the tables
// named in exclude (schemahook's own; resolved through the search_path). An empty database
// gives a Schema with no tables and a nil error.
func Read(ctx context.Context, conn *pgx.Conn, exclude ...string) (*Schema, error) {
	if exclude == nil {
		exclude = []string{}
	}
	rows, err := conn.Query(ctx, `SELECT c.oid, n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_temp\_%'
		  AND NOT (c.oid = ANY (coalesce((SELECT array_agg(r::oid) FROM unnest($1::text[]) x, to_regclass(x) r WHERE r IS NOT NULL), '{}'::oid[])))
		  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
		ORDER BY n.nspname, c.relname, a.attnum`, exclude)
	if err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	s := &Schema{}
	byOID := map[uint32]*Table{}
	var (
		oid           uint32
		schema, table string
		column, typ   *string
		notNull       *bool
	)
	_, err = pgx.ForEachRow(rows, []any{&oid, &schema, &table, &column, &typ, &notNull}, func() error {
		t := byOID[oid]
		if t == nil {
			t = &Table{Schema: schema, Name: table}
			byOID[oid] = t
			s.Tables = append(s.Tables, t)
		}
		if column != nil {
			t.Columns = append(t.Columns, &Column{Name: *column, Type: *typ, NotNull: *notNull})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	if len(s.Tables) == 0 {
		return s, nil
	}
	oids := make([]uint32, 0, len(byOID))
	for o := range byOID {
		oids = append(oids, o)
	}
	// Keys: constraints, plus unique indexes on plain columns that back no constraint (a
	// CREATE UNIQUE INDEX CONCURRENTLY is as unique as a UNIQUE constraint).
	rows, err = conn.Query(ctx, `SELECT con.conrelid, con.contype::text, con.conname, con.conkey, coalesce(con.confrelid, 0)
		FROM pg_constraint con WHERE con.contype IN ('p', 'u', 'f') AND con.conrelid = ANY ($1)
		UNION ALL
		SELECT i.indrelid, 'u', ic.relname, i.indkey::int2[], 0
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL AND i.indrelid = ANY ($1)
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
		ORDER BY 3`, oids)
	if err != nil {
		return nil, fmt.Errorf("reading keys: %w", err)
	}
	type key struct {
		rel, ref uint32
		kind     string
		name     string
		cols     []int16
	}
	var keys []key
	var k key
	_, err = pgx.ForEachRow(rows, []any{&k.rel, &k.kind, &k.name, &k.cols, &k.ref}, func() error {
		keys = append(keys, key{rel: k.rel, kind: k.kind, name: k.name, cols: slices.Clone(k.cols), ref: k.ref})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading keys: %w", err)
	}
	// conkey holds attribute numbers; columns were read in attnum order without dropped ones,
	// so map numbers to names through a second, cheap query.
	attnames, err := attributeNames(ctx, conn, oids)
	if err != nil {
		return nil, err
	}
	colsOf := func(rel uint32, nums []int16) []string {
		out := make([]string, 0, len(nums))
		for _, n := range nums {
			out = append(out, attnames[rel][n])
		}
		return out
	}
	uniques := map[uint32][][]string{} // per table: column sets that are unique
	pks := map[uint32][]string{}
	for _, k := range keys {
		cols := colsOf(k.rel, k.cols)
		t := byOID[k.rel]
		switch k.kind {
		case "p":
			pks[k.rel] = cols
			uniques[k.rel] = append(uniques[k.rel], cols)
			mark(t, cols, func(c *Column) { c.PK = true })
		case "u":
			uniques[k.rel] = append(uniques[k.rel], cols)
			if len(cols) == 1 {
				mark(t, cols, func(c *Column) { c.Unique = true })
			}
		}
	}
	for _, k := range keys {
		if k.kind != "f" {
			continue
		}
		child, parent := byOID[k.rel], byOID[k.ref]
		cols := colsOf(k.rel, k.cols)
		mark(child, cols, func(c *Column) { c.FK = true })
		if parent == nil {
			continue // references an excluded or system table
		}
		r := &Relation{Parent: parent, Child: child, Constraint: k.name, Columns: cols, Required: true}
		for _, c := range child.Columns {
			if slices.Contains(cols, c.Name) && !c.NotNull {
				r.Required = false
			}
		}
		for _, u := range uniques[k.rel] {
			if sameSet(u, cols) {
				r.OneToOne = true
			}
		}
		r.Identifying = len(pks[k.rel]) > 0 && subset(cols, pks[k.rel])
		s.Relations = append(s.Relations, r)
	}
	slices.SortFunc(s.Relations, func(a, b *Relation) int {
		return strings.Compare(a.Parent.qualified()+"\x00"+a.Child.qualified()+"\x00"+a.Constraint,
			b.Parent.qualified()+"\x00"+b.Child.qualified()+"\x00"+b.Constraint)
	})
	return s, nil
}

func attributeNames(ctx context.Context, conn *pgx.Conn, oids []uint32) (map[uint32]map[int16]string, error) {
	rows, err := conn.Query(ctx, `SELECT attrelid, attnum, attname FROM pg_attribute WHERE attrelid = ANY ($1) AND attnum > 0`, oids)
	if err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	out := map[uint32]map[int16]string{}
	var (
		rel  uint32
		num  int16
		name string
	)
	_, err = pgx.ForEachRow(rows, []any{&rel, &num, &name}, func() error {
		if out[rel] == nil {
			out[rel] = map[int16]string{}
		}
		out[rel][num] = name
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	return out, nil
}

func mark(t *Table, cols []string, f func(*Column)) {
	for _, c := range t.Columns {
		if slices.Contains(cols, c.Name) {
			f(c)
		}
	}
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func sameSet(a, b []string) bool { return len(a) == len(b) && subset(a, b) && subset(b, a) }

func (t *Table) qualified() string { return t.Schema + "." + t.Name }

// WriteMermaid writes s as a Mermaid erDiagram. Tables in the public schema are named as they
// are, others as "schema.table". Mermaid accepts only word characters in attribute types and
// names, so a type such as "numeric(10,2)" is written as a word ("numeric") and spelled out in
// the attribute's comment; common multi-word types get their short PostgreSQL names
// (timestamptz, varchar(40)). Relationships read parent-to-child: "||" exactly one parent,
// "|o" zero or one (a nullable foreign key); "o{" any number of children, "o|" at most one;
// a solid line when the foreign key is part of the child's primary key, dotted otherwise.
func (s *Schema) WriteMermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("erDiagram\n")
	for _, t := range s.Tables {
		fmt.Fprintf(&b, "    %s {\n", entityName(t))
		for _, c := range t.Columns {
			typ, typExact := attrWord(mermaidType(c.Type))
			name, nameExact := attrWord(c.Name)
			line := "        " + typ + " " + name
			var keys []string
			for _, k := range []struct {
				on   bool
				name string
			}{{c.PK, "PK"}, {c.FK, "FK"}, {c.Unique && !c.PK, "UK"}} {
				if k.on {
					keys = append(keys, k.name)
				}
			}
			if len(keys) > 0 {
				line += " " + strings.Join(keys, ", ")
			}
			var comment []string
			if !nameExact {
				comment = append(comment, c.Name)
			}
			if !typExact {
				comment = append(comment, c.Type)
			}
			if len(comment) > 0 {
				line += ` "` + strings.ReplaceAll(strings.Join(comment, " "), `"`, "'") + `"`
			}
			b.WriteString(line + "\n")
		}
		b.WriteString("    }\n")
	}
	for _, r := range s.Relations {
		left, right, line := "|o", "o{", ".."
		if r.Required {
			left = "||"
		}
		if r.OneToOne {
			right = "o|"
		}
		if r.Identifying {
			line = "--"
		}
		fmt.Fprintf(&b, "    %s %s%s%s %s : %q\n", entityName(r.Parent), left, line, right, entityName(r.Child),
			strings.ReplaceAll(strings.Join(r.Columns, ", "), `"`, "'"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Compiled on first use: this package is linked into every schemahook run, diagrams are rare.
var (
	plainEntity = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	plainAttr   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_\-\[\]()]*$`) })
	notAttrChar = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^A-Za-z0-9_\-\[\]()]+`) })
)

func entityName(t *Table) string {
	name := t.Name
	if t.Schema != "public" {
		name = t.Schema + "." + t.Name
	}
	if plainEntity().MatchString(name) {
		return name
	}
	// Mermaid's quoted entity names may not contain '"', '%' or '\'.
	return `"` + strings.NewReplacer(`"`, "'", "%", "_", `\`, "_").Replace(name) + `"`
}

// attrWord makes s a valid Mermaid attribute word; exact is false when it had to change it.
func attrWord(s string) (word string, exact bool) {
	if plainAttr().MatchString(s) {
		return s, true
	}
	w := strings.Trim(notAttrChar().ReplaceAllString(s, "_"), "_")
	if w == "" || !plainAttr().MatchString(w) {
		w = "_" + w
	}
	return w, false
}

// longTypes are format_type spellings with spaces and their short PostgreSQL aliases.
var longTypes = []struct{ long, short string }{
	{"timestamp without time zone", "timestamp"},
	{"timestamp with time zone", "timestamptz"},
	{"time without time zone", "time"},
	{"time with time zone", "timetz"},
	{"character varying", "varchar"},
	{"bit varying", "varbit"},
	{"double precision", "float8"},
	{"character", "char"},
}

// mermaidType shortens multi-word types, keeping modifiers and array brackets:
// "timestamp(3) with time zone" → "timestamptz(3)", "character varying(40)[]" → "varchar(40)[]".
func mermaidType(t string) string {
	for _, lt := range longTypes {
		head, tail := lt.long, ""
		if i := strings.Index(lt.long, " "); i > 0 && strings.HasPrefix(lt.long, "time") {
			head, tail = lt.long[:i], lt.long[i:] // the modifier sits between "timestamp" and "with time zone"
		}
		if !strings.HasPrefix(t, head) {
			continue
		}
		rest := t[len(head):]
		mod := ""
		if strings.HasPrefix(rest, "(") {
			if j := strings.IndexByte(rest, ')'); j > 0 {
				mod, rest = rest[:j+1], rest[j+1:]
			}
		}
		if !strings.HasPrefix(rest, tail) {
			continue
		}
		rest = rest[len(tail):]
		if rest == "" || strings.HasPrefix(rest, "[") {
			return lt.short + mod + rest
		}
	}
	return t
}
