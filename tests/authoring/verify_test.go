package authoring

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/tests/pgtest"
)

// scratchDatabases lists the databases verify creates, to check it drops them again.
func scratchDatabases(t testing.TB, db *pgtest.DB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db.Server.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'schemahook\_verify\_%' ORDER BY 1`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// verify runs `schemahook verify` on the test server with the migrations in dir and checks that
// it leaves no scratch database behind.
func verify(t *testing.T, dir string, args ...string) result {
	t.Helper()
	db := pgtest.New(t)
	before := strings.Join(scratchDatabases(t, db), ",")
	r := run(t, []string{"SCHEMAHOOK_SERVER_URL=" + db.Server.AdminURL, migrationsEnv(dir)}, append([]string{"verify"}, args...)...)
	if after := strings.Join(scratchDatabases(t, db), ","); after != before {
		t.Fatalf("scratch databases before %q, after %q: verify must drop the one it created", before, after)
	}
	return r
}

func TestVerifyExampleMigrations(t *testing.T) {
	r := verify(t, writeDir(t, exampleFiles(t)))
	wantCode(t, r, exitOK)
	golden(t, "verify_ok", r.Stdout)
}

func TestVerifyCatchesDownThatForgetsAnIndex(t *testing.T) {
	r := verify(t, writeDir(t, map[string]string{
		"000001_items.up.sql":        "CREATE TABLE items (id bigint PRIMARY KEY, sku text NOT NULL, price numeric(10,2));",
		"000001_items.down.sql":      "DROP TABLE items;",
		"000002_items_sku.up.sql":    "CREATE INDEX items_sku_idx ON items (sku);\nALTER TABLE items ADD COLUMN discontinued boolean NOT NULL DEFAULT false;",
		"000002_items_sku.down.sql":  "-- forgets items_sku_idx\nALTER TABLE items DROP COLUMN discontinued;",
		"000003_items_note.up.sql":   "ALTER TABLE items ADD COLUMN note text;",
		"000003_items_note.down.sql": "ALTER TABLE items DROP COLUMN note;",
	}))
	wantCode(t, r, exitVerifyFailed)
	golden(t, "verify_forgotten_index", r.Stdout)
}

func TestVerifyCatchesDownOfTheWrongTable(t *testing.T) {
	files := exampleFiles(t)
	files["000004_projects_slug.down.sql"] = "ALTER TABLE accounts DROP COLUMN name;\n"
	r := verify(t, writeDir(t, files))
	wantCode(t, r, exitVerifyFailed)
	golden(t, "verify_wrong_table", r.Stdout)
}

// An up migration that depends on data its down leaves behind gives a different schema the
// second time: the schema after down matches, but re-applying does not. The data survives in a
// table of an irreversible migration, which the down pass stops at.
func TestVerifyCatchesUpThatDiffersWhenReapplied(t *testing.T) {
	r := verify(t, writeDir(t, map[string]string{
		"000001_flags.up.sql": "-- schemahook:irreversible\nCREATE TABLE flags (name text PRIMARY KEY);",
		"000002_audit.up.sql": `CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz NOT NULL);
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM flags WHERE name = 'audit-indexed') THEN
    CREATE INDEX audit_at_idx ON audit (at);
  END IF;
END $$;
INSERT INTO flags VALUES ('audit-indexed') ON CONFLICT DO NOTHING;`,
		"000002_audit.down.sql": "DROP TABLE audit;",
	}))
	wantCode(t, r, exitVerifyFailed)
	golden(t, "verify_reapplied", r.Stdout)
}

func TestVerifyStopsAtIrreversibleMigration(t *testing.T) {
	r := verify(t, writeDir(t, map[string]string{
		"000001_a.up.sql":   "CREATE TABLE a (id int);",
		"000001_a.down.sql": "DROP TABLE a;",
		"000002_b.up.sql":   "-- schemahook:irreversible\nCREATE TABLE b (id int);",
		"000003_c.up.sql":   "CREATE VIEW c AS SELECT id FROM a;\nCREATE SEQUENCE c_seq START 10;",
		"000003_c.down.sql": "DROP VIEW c;\nDROP SEQUENCE c_seq;",
	}))
	wantCode(t, r, exitOK)
	golden(t, "verify_irreversible", r.Stdout)
}

// Functions, triggers, enums, sequences and views are part of the comparison.
func TestVerifyComparesFunctionsAndTypes(t *testing.T) {
	r := verify(t, writeDir(t, map[string]string{
		"000001_base.up.sql": `CREATE TYPE mood AS ENUM ('ok', 'meh');
CREATE TABLE notes (id int PRIMARY KEY, body text, mood mood, touched timestamptz);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.touched := now(); RETURN NEW; END $$;
CREATE TRIGGER notes_touch BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION touch();`,
		"000001_base.down.sql": "DROP TABLE notes;\nDROP FUNCTION touch();\nDROP TYPE mood;",
		"000002_mood.up.sql":   "ALTER TYPE mood ADD VALUE 'great';\nCREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.touched := clock_timestamp(); RETURN NEW; END $$;",
		// Cannot remove an enum value; this down also forgets to restore the old function body.
		"000002_mood.down.sql": "SELECT 1;",
	}))
	wantCode(t, r, exitVerifyFailed)
	golden(t, "verify_functions_types", r.Stdout)
}

func TestVerifyFailingDownIsAMigrationFailure(t *testing.T) {
	r := verify(t, writeDir(t, map[string]string{
		"000001_a.up.sql":   "CREATE TABLE a (id int);",
		"000001_a.down.sql": "DROP TABLE no_such_table;",
	}))
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.Stderr, "000001_a.down.sql") {
		t.Fatalf("the error must name the failing file: %s", r.Stderr)
	}
}

// Without --server-url verify uses the database connection, but only to create its scratch
// database: the database itself stays empty.
func TestVerifyUsesDatabaseURLOnlyToConnect(t *testing.T) {
	db := pgtest.New(t)
	r := run(t, []string{"SCHEMAHOOK_DATABASE_URL=" + db.URL, migrationsEnv(writeDir(t, exampleFiles(t)))}, "verify")
	wantCode(t, r, exitOK)
	var tables int
	if err := db.Conn(t).QueryRow(context.Background(),
		"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("verify created %d relations in the database it connected through; it must only use a scratch database", tables)
	}
}

func TestVerifyUnreachableServer(t *testing.T) {
	r := run(t, []string{"SCHEMAHOOK_SERVER_URL=" + unreachableServer}, "verify", "--wait-for-db", "1s")
	wantCode(t, r, exitTimeout)
}

func TestVerifyNoMigrations(t *testing.T) {
	r := run(t, []string{"SCHEMAHOOK_SERVER_URL=" + unreachableServer, migrationsEnv(t.TempDir())}, "verify")
	wantCode(t, r, exitUsage)
}
