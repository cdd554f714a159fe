package source

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestWarnings(t *testing.T) {
	fsys := fstest.MapFS{
		"000001_a.up.sql":       {Data: []byte("CREATE TABLE a (id int);\n")},
		"000001_a.down.sql":     {Data: []byte("-- nothing to undo yet\n\n")},
		"000002_b.up.sql":       {Data: []byte("\n/* TODO */\n-- later\n")},
		"000002_b.down.sql":     {Data: []byte("DROP TABLE IF EXISTS b;\n")},
		"000003_c.up.SQL":       {Data: []byte("CREATE TABLE c (id int);\n")},
		"000001_a.up.sql.orig":  {Data: []byte("CREATE TABLE a (id int);\n")},
		"README.md":             {Data: []byte("# migrations\n")},
		"embed.go":              {Data: []byte("package migrations\n")},
		"fixtures/000009_x.sql": {Data: []byte("SELECT 1;\n")},
	}
	cat, err := Open(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	cat.OnWarning(func(w string) { got = append(got, w) })
	if err := cat.ReadDowns(); err != nil {
		t.Fatal(err)
	}
	want := []string{ // file name, and a word of what to do
		"000001_a.up.sql.orig is not read as a migration",
		"000003_c.up.SQL is not read as a migration: the suffix is lower case: rename it to 000003_c.up.sql",
		"000002_b.up.sql is empty",
		"000001_a.down.sql is empty",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n  %s\nwant %d", strings.Join(got, "\n  "), len(want))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no warning %q in:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
	if !slices.Equal(cat.Warnings(), got) {
		t.Errorf("Warnings() = %q, want what OnWarning saw", cat.Warnings())
	}
}
