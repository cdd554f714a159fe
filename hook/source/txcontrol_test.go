package source

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// A transactional file that controls the transaction itself is refused at load, with the file,
// the line and both ways out; the same statements hidden from the top level, and any statement
// in a no-transaction file, are not.
func TestTransactionControlRefused(t *testing.T) {
	const down = "DROP TABLE b;\n"
	refused := map[string]string{
		"golang-migrate style":  "BEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n",
		"commit midway":         "CREATE TABLE b (id int);\n-- done\ncommit;\nCREATE TABLE c (id int);\n",
		"savepoint":             "CREATE TABLE b (id int);\n\nSAVEPOINT s;\n",
		"release":               "CREATE TABLE b (id int);\n\nRELEASE s;\n",
		"prepare transaction":   "CREATE TABLE b (id int);\n\nPREPARE TRANSACTION 'x';\n",
		"end after atomic body": "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n\nEND;\n",
	}
	lines := map[string]int{"golang-migrate style": 1, "commit midway": 3}
	for name, up := range refused {
		t.Run(name, func(t *testing.T) {
			// The catalog reads such a file (golang-migrate applied many like it: an adopted
			// database must stay readable); it refuses to run it.
			c, err := Load(fstest.MapFS{"000001_b.up.sql": {Data: []byte(up)}, "000001_b.down.sql": {Data: []byte(down)}}, ".")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := c.Migrations()[0].Up.Runnable(); err == nil {
				t.Fatal("Up.Runnable: nil, want the file refused")
			}
			err = c.Runnable(c.Migrations())
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Runnable: %v, want ErrInvalid", err)
			}
			line := lines[name]
			if line == 0 {
				line = 3
			}
			for _, want := range []string{"000001_b.up.sql:" + string(rune('0'+line)) + ":", "remove the transaction control statements", "-- schemahook:no-transaction"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
		})
	}
	accepted := map[string]string{
		"no-transaction file":  "-- schemahook:no-transaction\nBEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n",
		"do block":             "DO $$ BEGIN CREATE TABLE b (id int); END $$;\n",
		"function body":        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN 1; END $f$;\nCREATE TABLE b (id int);\n",
		"sql-standard body":    "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN x > 0 THEN 2 END; END;\n",
		"columns named so":     "CREATE TABLE b (\"begin\" int, \"end\" int, commit int);\nUPDATE b SET commit = 1 WHERE \"end\" = 2;\n",
		"in strings, comments": "CREATE TABLE b (id int); -- COMMIT;\n/* ROLLBACK; */ SELECT 'BEGIN;';\n",
		"prepared statement":   "CREATE TABLE b (id int);\nPREPARE p AS SELECT 1;\nDEALLOCATE p;\n",
	}
	for name, up := range accepted {
		t.Run(name, func(t *testing.T) {
			c, err := Load(fstest.MapFS{"000001_b.up.sql": {Data: []byte(up)}, "000001_b.down.sql": {Data: []byte(down)}}, ".")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := c.Runnable(c.Migrations()); err != nil {
				t.Fatalf("Runnable: %v", err)
			}
		})
	}
	// A down file is checked once read: the history stores it for a later downgrade.
	c, err := Open(fstest.MapFS{"000001_b.up.sql": {Data: []byte("CREATE TABLE b (id int);\n")}, "000001_b.down.sql": {Data: []byte("BEGIN;\nDROP TABLE b;\nCOMMIT;\n")}}, ".")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReadDowns(); err != nil {
		t.Fatalf("ReadDowns: %v", err)
	}
	if err := c.Runnable(c.Migrations()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "000001_b.down.sql:1: BEGIN") {
		t.Fatalf("Runnable: %v", err)
	}
	// A stored down SQL is checked the same way.
	if err := NewFile("stored", "BEGIN;\nDROP TABLE b;\nCOMMIT;\n", false).Runnable(); err == nil {
		t.Fatal("NewFile(stored BEGIN … COMMIT).Runnable: nil")
	}
	if err := NewFile("stored", "BEGIN;\nDROP TABLE b;\nCOMMIT;\n", true).Runnable(); err != nil {
		t.Fatalf("no-transaction stored down SQL: %v", err)
	}
}
