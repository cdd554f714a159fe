package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// fuzzFS turns fuzz input into a directory: names holds one file name per line, bodies holds
// the contents separated by NUL (reused cyclically), so the fuzzer mutates names and contents
// independently. Names fs.FS could not hold (empty, "..", leading "/") are dropped: a real
// directory cannot contain them either.
func fuzzFS(names, bodies string) fstest.MapFS {
	contents := strings.Split(bodies, "\x00")
	fsys := fstest.MapFS{}
	for i, n := range strings.Split(names, "\n") {
		if !fs.ValidPath(n) || n == "." {
			continue
		}
		fsys[n] = &fstest.MapFile{Data: []byte(contents[i%len(contents)]), Mode: 0o644}
	}
	return fsys
}

// FuzzLoad checks what the rest of schemahook relies on from a loaded catalog, whatever the
// directory holds: Load never panics; an accepted catalog has unique ascending versions that
// fit the database's bigint version column, an up file for each, a down file unless marked
// irreversible, checksums of the up files, flags that match the directives, and every *.sql
// file of the directory in it (none silently dropped); and golang-migrate's iofs source — which
// actually drives the run — sees exactly the same files.
func FuzzLoad(f *testing.F) {
	seeds := []struct{ names, bodies string }{
		{"000001_init.up.sql\n000001_init.down.sql", "CREATE TABLE a (id int);\x00DROP TABLE a;"},
		{"1_a.up.sql\n2_b.up.sql\n2_b.down.sql\n1_a.down.sql", "SELECT 1\x00-- schemahook:irreversible\nSELECT 2"},
		{"000002_x.up.sql", "-- schemahook:irreversible\nDROP TABLE old;"},
		{"000003_cic.up.sql\n000003_cic.down.sql", "-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);"},
		{"1_a.up.sql\n01_a.down.sql", "x"},                                // same version, different spelling
		{"1_a.up.sql\n1_b.down.sql", "x"},                                 // one version, two names
		{"1_a.up.sql\n1_a.up.sql.orig\n1_a.down.sql", "x"},                // a stray copy next to the real file
		{"2_a.up.sql\n2_a.down.sql\n3_b.down.txt", "x"},                   // a non-.sql file golang-migrate would read
		{"18446744073709551615_max.up.sql", "-- schemahook:irreversible"}, // uint64 max
		{"9223372036854775808_big.up.sql\n9223372036854775808_big.down.sql", "x"},
		{"99999999999999999999_huge.up.sql", "x"},
		{"README.md\nembed.go\nsub/1_a.up.sql", "x"},
		{"1_a.UP.sql\n1-a.up.sql\n_a.up.sql\n1_.up.sql\n1_a.sql", "x"},
		{"1_a.up.sql\n1_a.down.sql", "-- schemahook:irreversible\x00x"}, // irreversible with a down file
		{"1_a.up.sql\n1_a.down.sql", "x\x00-- schemahook:irreversible"}, // directive in the down file
		{"1_a.up.sql\n1_a.down.sql", "-- schemahook:no-transactions\x00x"},
		{"1__.up.sql\n1_a.down.up.sql\na1_x.up.sql\n1_x.up.sql.up.sql\n1_x.down.sql.sql\n12_.down.sql\n_1_a.up.sql", "x"}, // name parsing edges
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s.names, s.bodies)
	}
	f.Fuzz(func(t *testing.T, names, bodies string) {
		fsys := fuzzFS(names, bodies)
		checkNames(t, fsys)
		c, err := Load(fsys, ".")
		// Open then ReadDowns accepts and rejects exactly what Load does: the update path reads
		// the down files later, but must not let through what Load refuses.
		lazy, lerr := Open(fsys, ".")
		if lerr == nil {
			lerr = lazy.ReadDowns()
		}
		if (err == nil) != (lerr == nil) {
			t.Fatalf("Load error %v, but Open+ReadDowns error %v", err, lerr)
		}
		if err != nil {
			// Every rejection is an ErrInvalid, which the CLI maps to "usage: nothing touched".
			if !errors.Is(err, ErrInvalid) || !errors.Is(lerr, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: Load %v, Open+ReadDowns %v", err, lerr)
			}
			return
		}
		checkCatalog(t, fsys, c)
		checkCatalog(t, fsys, lazy)
	})
}

// checkNames holds ParseFileName to golang-migrate's file name pattern, which it replaces.
func checkNames(t *testing.T, fsys fstest.MapFS) {
	t.Helper()
	for name := range fsys {
		m := fileRE.FindStringSubmatch(name)
		f, ok := ParseFileName(name)
		if (m != nil) != ok || ok && (f.Version != m[1] || f.Name != m[2] || f.Up != (m[3] == "up")) {
			t.Fatalf("ParseFileName(%q) = %+v, %t; the pattern gives %q", name, f, ok, m)
		}
	}
}

var (
	fileRE = regexp.MustCompile(`^([0-9]+)_(.+)\.(up|down)\.sql$`)
	upRE   = regexp.MustCompile(`^([0-9]+)_(.+)\.up\.sql$`)
	downRE = regexp.MustCompile(`^([0-9]+)_(.+)\.down\.sql$`)
)

func checkCatalog(t *testing.T, fsys fstest.MapFS, c *Catalog) {
	t.Helper()
	ms := c.Migrations()
	if len(ms) == 0 {
		t.Fatal("accepted catalog has no migrations")
	}
	seen := map[string]bool{}
	for i, m := range ms {
		if i > 0 && ms[i-1].Version >= m.Version {
			t.Fatalf("versions not strictly ascending: %d then %d", ms[i-1].Version, m.Version)
		}
		// schema_migrations.version is a bigint: a larger version cannot be recorded, and the
		// driver's int arithmetic would turn it negative (NilVersion is -1).
		if uint64(m.Version) > math.MaxInt64 {
			t.Fatalf("version %d of %s does not fit the bigint version column", m.Version, m.Up.Name)
		}
		if c.Lookup(m.Version) != m {
			t.Fatalf("Lookup(%d) does not return the migration", m.Version)
		}
		sm := upRE.FindStringSubmatch(m.Up.Name)
		if sm == nil || sm[2] != m.Name {
			t.Fatalf("up file %q does not match name %q", m.Up.Name, m.Name)
		}
		if v, err := strconv.ParseUint(sm[1], 10, 64); err != nil || uint(v) != m.Version {
			t.Fatalf("up file %q does not carry version %d", m.Up.Name, m.Version)
		}
		if string(fsys[m.Up.Name].Data) != m.Up.SQL {
			t.Fatalf("%s: SQL differs from the file", m.Up.Name)
		}
		sum := sha256.Sum256(fsys[m.Up.Name].Data)
		if m.Checksum != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: checksum is not the SHA-256 of the up file", m.Up.Name)
		}
		dirs, err := ParseDirectives(m.Up.SQL)
		if err != nil {
			t.Fatalf("%s accepted although its directives do not parse: %v", m.Up.Name, err)
		}
		if m.Irreversible != dirs.Has(DirectiveIrreversible) || m.Up.NoTransaction != dirs.Has(DirectiveNoTransaction) {
			t.Fatalf("%s: flags (irreversible %t, no-transaction %t) disagree with directives %+v", m.Up.Name, m.Irreversible, m.Up.NoTransaction, dirs)
		}
		seen[m.Up.Name] = true
		down, err := m.Down()
		if err != nil {
			t.Fatalf("%s: reading the down file of a loaded catalog: %v", m.Up.Name, err)
		}
		switch {
		case (down == nil) != (m.DownName() == ""):
			t.Fatalf("%s: down file %v disagrees with DownName %q", m.Up.Name, down, m.DownName())
		case down == nil && !m.Irreversible:
			t.Fatalf("%s has no down file and is not irreversible", m.Up.Name)
		case down != nil && m.Irreversible:
			t.Fatalf("%s is irreversible but has down file %s", m.Up.Name, down.Name)
		case down != nil:
			dm := downRE.FindStringSubmatch(down.Name)
			if dm == nil || down.Name != m.DownName() {
				t.Fatalf("down file %q is not named like a down file", down.Name)
			}
			if v, err := strconv.ParseUint(dm[1], 10, 64); err != nil || uint(v) != m.Version || dm[2] != m.Name {
				t.Fatalf("down file %q does not belong to %q", down.Name, m.Up.Name)
			}
			if string(fsys[down.Name].Data) != down.SQL {
				t.Fatalf("%s: SQL differs from the file", down.Name)
			}
			dirs, err := ParseDirectives(down.SQL)
			if err != nil || down.NoTransaction != dirs.Has(DirectiveNoTransaction) || dirs.Has(DirectiveIrreversible) {
				t.Fatalf("%s accepted with directives %+v (%v), no-transaction flag %t", down.Name, dirs, err, down.NoTransaction)
			}
			seen[down.Name] = true
		}
	}
	if c.Head() != ms[len(ms)-1] || len(c.After(nil)) != len(ms) {
		t.Fatal("Head/After(nil) disagree with Migrations")
	}
	// Nothing silently dropped: every *.sql file at the top of the directory is in the catalog.
	entries, _ := fs.ReadDir(fsys, ".")
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") && !seen[e.Name()] {
			t.Fatalf("%s was silently left out of the catalog", e.Name())
		}
	}
	checkIOFS(t, c, ms)
}

// checkIOFS walks golang-migrate's source over the catalog and requires the same versions with
// the same files: golang-migrate decides what runs, the catalog what was validated.
func checkIOFS(t *testing.T, c *Catalog, ms []*Migration) {
	t.Helper()
	src, err := c.Driver()
	if err != nil {
		t.Fatalf("golang-migrate cannot open a catalog Load accepted: %v", err)
	}
	defer src.Close()
	v, err := src.First()
	for i := 0; ; i++ {
		if err != nil {
			if i != len(ms) {
				t.Fatalf("golang-migrate sees %d migrations, the catalog %d (%v)", i, len(ms), err)
			}
			return
		}
		if i >= len(ms) || uint(v) != ms[i].Version {
			t.Fatalf("golang-migrate's migration #%d is version %d; the catalog disagrees", i, v)
		}
		r, ident, rerr := src.ReadUp(v)
		if rerr != nil {
			t.Fatalf("golang-migrate cannot read up %d: %v", v, rerr)
		}
		body, _ := io.ReadAll(r)
		r.Close()
		if string(body) != ms[i].Up.SQL || ident != ms[i].Name {
			t.Fatalf("golang-migrate reads another up file for version %d (%q)", v, ident)
		}
		down, _ := ms[i].Down()
		r, _, rerr = src.ReadDown(v)
		switch {
		case rerr == nil && down == nil:
			r.Close()
			t.Fatalf("golang-migrate finds a down file for irreversible version %d", v)
		case rerr == nil:
			body, _ := io.ReadAll(r)
			r.Close()
			if string(body) != down.SQL {
				t.Fatalf("golang-migrate reads another down file for version %d", v)
			}
		case down != nil:
			t.Fatalf("golang-migrate cannot read down %d: %v", v, rerr)
		}
		v, err = src.Next(v)
	}
}

// FuzzParseDirectives: ParseDirectives never panics, returns only known names with the
// arguments their rules allow, reports each directive at a line that really holds it, misses
// none, and reports errors with the line they are about.
func FuzzParseDirectives(f *testing.F) {
	for _, s := range []string{
		"-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);",
		"-- schemahook:irreversible\r\nDROP TABLE t;\r\n",
		"--schemahook:no-transaction",
		"  --   schemahook:irreversible   ",
		"-- schemahook:lint-ignore drop-column the column was unused since v2\nALTER TABLE t DROP COLUMN c;",
		"-- schemahook:lint-ignore drop-column",
		"-- schemahook:no-transaction please",
		"-- schemahook:no-transactions",
		"-- schemahook:irreversible\tnow",
		"-- schemahook:",
		"-- SCHEMAHOOK:no-transaction",
		"SELECT 1; -- schemahook:no-transaction",
		"/* -- schemahook:no-transaction */",
		"---- schemahook:irreversible",
		"-- schemahook:no-transaction\n-- schemahook:no-transaction",
		"\xff-- schemahook:irreversible\n-- schemahook:\xff",
	} {
		f.Add(s)
	}
	known := map[string]bool{DirectiveNoTransaction: true, DirectiveIrreversible: true, DirectiveLintIgnore: true}
	lineRE := regexp.MustCompile(`^line ([0-9]+): `)
	f.Fuzz(func(t *testing.T, sql string) {
		ds, err := ParseDirectives(sql)
		lines := strings.Split(sql, "\n")
		if err != nil {
			if ds != nil {
				t.Fatalf("error %v together with directives %+v", err, ds)
			}
			m := lineRE.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error does not start with the line: %v", err)
			}
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > len(lines) || !strings.Contains(lines[n-1], DirectivePrefix) {
				t.Fatalf("error points at line %s, which holds no directive: %v", m[1], err)
			}
			return
		}
		for _, d := range ds {
			if !known[d.Name] {
				t.Fatalf("unknown directive %q accepted", d.Name)
			}
			if d.Line < 1 || d.Line > len(lines) {
				t.Fatalf("directive %+v: line out of range", d)
			}
			line := strings.TrimSpace(lines[d.Line-1])
			if !strings.HasPrefix(line, "--") || !strings.Contains(line, DirectivePrefix+d.Name) {
				t.Fatalf("directive %+v: line %d is %q", d, d.Line, line)
			}
			switch d.Name {
			case DirectiveNoTransaction, DirectiveIrreversible:
				if d.Args != "" {
					t.Fatalf("%s accepted arguments %q", d.Name, d.Args)
				}
			case DirectiveLintIgnore:
				if rule, reason, _ := strings.Cut(d.Args, " "); rule == "" || strings.TrimSpace(reason) == "" {
					t.Fatalf("lint-ignore accepted without rule and reason: %q", d.Args)
				}
			}
			if d.Args != strings.TrimSpace(d.Args) {
				t.Fatalf("args not trimmed: %q", d.Args)
			}
		}
		// Completeness: every comment line that starts with the prefix is reported (an accepted
		// file has no directive the parser skipped).
		n := 0
		for _, l := range lines {
			if body, ok := strings.CutPrefix(strings.TrimSpace(l), "--"); ok && strings.HasPrefix(strings.TrimSpace(body), DirectivePrefix) {
				n++
			}
		}
		if n != len(ds) {
			t.Fatalf("%d directive lines, %d directives reported: %+v", n, len(ds), ds)
		}
		if !slices.IsSortedFunc(ds, func(a, b Directive) int { return a.Line - b.Line }) {
			t.Fatalf("directives out of order: %+v", ds)
		}
	})
}
