package authoring

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schemahook/schemahook/tests/pgtest"
)

func TestDiagramExampleSchema(t *testing.T) {
	db := pgtest.New(t)
	env := []string{"SCHEMAHOOK_DATABASE_URL=" + db.URL}
	wantCode(t, run(t, env, "update"), exitOK)
	r := run(t, env, "diagram")
	wantCode(t, r, exitOK)
	golden(t, "diagram_example", r.Stdout)

	// docs/schema.md (make diagram) must show the current example schema.
	doc, err := os.ReadFile("../../docs/schema.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```mermaid\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 || block != r.Stdout {
		t.Fatalf("docs/schema.md is out of date: run make diagram\n--- docs/schema.md\n%s\n--- diagram\n%s", block, r.Stdout)
	}

	out := filepath.Join(t.TempDir(), "schema.md")
	wantCode(t, run(t, env, "diagram", "-o", "markdown", "--file", out), exitOK)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "```mermaid\n"+r.Stdout+"```\n" {
		t.Fatalf("-o markdown --file wrote\n%s", b)
	}
}

// Cardinality comes from the schema: nullable or not, unique or not, part of the primary key or not.
func TestDiagramCardinality(t *testing.T) {
	db := pgtest.New(t)
	_, err := db.Conn(t).Exec(context.Background(), `
		CREATE SCHEMA billing;
		CREATE TABLE users (id bigint PRIMARY KEY, manager_id bigint REFERENCES users (id), email varchar(200) NOT NULL UNIQUE);
		CREATE TABLE profiles (user_id bigint PRIMARY KEY REFERENCES users (id), bio text);
		CREATE TABLE passports (id int PRIMARY KEY, user_id bigint NOT NULL UNIQUE REFERENCES users (id));
		CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL);
		CREATE UNIQUE INDEX teams_name_key ON teams (name);
		CREATE TABLE memberships (team_id int REFERENCES teams (id), user_id bigint REFERENCES users (id),
			since timestamp(3) with time zone DEFAULT now(), PRIMARY KEY (team_id, user_id));
		CREATE TABLE billing.invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, team_id int REFERENCES teams (id),
			amount numeric(10,2) NOT NULL, "Due Date" date, tags text[]);
		CREATE TABLE billing.lines (invoice_id bigint NOT NULL, n int NOT NULL, PRIMARY KEY (invoice_id, n),
			FOREIGN KEY (invoice_id) REFERENCES billing.invoices (id));
		CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);`)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, []string{"SCHEMAHOOK_DATABASE_URL=" + db.URL}, "diagram")
	wantCode(t, r, exitOK)
	golden(t, "diagram_cardinality", r.Stdout)
}

func TestDiagramEmptyDatabase(t *testing.T) {
	db := pgtest.New(t)
	r := run(t, []string{"SCHEMAHOOK_DATABASE_URL=" + db.URL}, "diagram")
	wantCode(t, r, exitOK)
	if r.Stdout != "erDiagram\n" {
		t.Fatalf("empty database: got %q, want an empty erDiagram", r.Stdout)
	}
}

func TestDiagramBadInput(t *testing.T) {
	wantCode(t, run(t, []string{"SCHEMAHOOK_DATABASE_URL=" + unreachableServer}, "diagram", "--wait-for-db", "0"), exitTimeout)
	wantCode(t, run(t, []string{"SCHEMAHOOK_DATABASE_URL=" + unreachableServer}, "diagram", "-o", "svg"), exitUsage)
}
