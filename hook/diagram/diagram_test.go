package diagram

import (
	"strings"
	"testing"
)

func TestMermaidType(t *testing.T) {
	for in, want := range map[string]string{
		"timestamp with time zone":       "timestamptz",
		"timestamp(3) with time zone":    "timestamptz(3)",
		"timestamp without time zone":    "timestamp",
		"time with time zone":            "timetz",
		"character varying(40)":          "varchar(40)",
		"character varying[]":            "varchar[]",
		"character(1)":                   "char(1)",
		"double precision":               "float8",
		"bit varying(8)":                 "varbit(8)",
		"bigint":                         "bigint",
		"numeric(10,2)":                  "numeric(10,2)",
		"timestamp with time zone[]":     "timestamptz[]",
		"public.my_type":                 "public.my_type",
		"interval hour to minute":        "interval hour to minute",
		"character varying(40) is weird": "character varying(40) is weird",
	} {
		if got := mermaidType(in); got != want {
			t.Errorf("mermaidType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteMermaid(t *testing.T) {
	org := &Table{Schema: "public", Name: "orgs", Columns: []*Column{{Name: "id", Type: "bigint", NotNull: true, PK: true}}}
	user := &Table{Schema: "app", Name: "users", Columns: []*Column{
		{Name: "id", Type: "bigint", NotNull: true, PK: true},
		{Name: "org_id", Type: "bigint", FK: true},
		{Name: "email", Type: "character varying(200)", NotNull: true, Unique: true},
		{Name: "balance", Type: "numeric(10,2)"},
		{Name: "Display Name", Type: "text"},
	}}
	s := &Schema{Tables: []*Table{user, org}, Relations: []*Relation{
		{Parent: org, Child: user, Constraint: "users_org_id_fkey", Columns: []string{"org_id"}},
	}}
	var b strings.Builder
	if err := s.WriteMermaid(&b); err != nil {
		t.Fatal(err)
	}
	want := `erDiagram
    "app.users" {
        bigint id PK
        bigint org_id FK
        varchar(200) email UK
        numeric(10_2) balance "numeric(10,2)"
        text Display_Name "Display Name"
    }
    orgs {
        bigint id PK
    }
    orgs |o..o{ "app.users" : "org_id"
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
