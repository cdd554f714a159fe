package integration

import (
	"errors"
	"testing"
	"time"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// Pending says how much Update would apply, without writing, and refuses what Update refuses.
func TestPending(t *testing.T) {
	db := pgtest.New(t)
	files := exampleFiles(t)
	ctx := ctxT(t, time.Minute)
	full := newRunner(t, db, writeDir(t, files), pgdriver.Options{})
	if n, err := full.Pending(ctx); err != nil || n != 5 {
		t.Fatalf("empty database: Pending = %d, %v; want 5", n, err)
	}
	if tableExists(t, db.Conn(t), "schema_migrations") {
		t.Fatal("Pending created the version table")
	}
	if _, err := newRunner(t, db, writeDir(t, upTo(files, 3)), pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := full.Pending(ctx); err != nil || n != 2 {
		t.Fatalf("at 3: Pending = %d, %v; want 2", n, err)
	}
	if _, err := full.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := full.Pending(ctx); err != nil || n != 0 {
		t.Fatalf("at head: Pending = %d, %v; want 0", n, err)
	}
	if n, err := newRunner(t, db, writeDir(t, upTo(files, 2)), pgdriver.Options{}).Pending(ctx); !errors.Is(err, runner.ErrDatabaseNewer) || n != 0 {
		t.Fatalf("older release: Pending = %d, %v; want 0 and ErrDatabaseNewer", n, err)
	}
}
