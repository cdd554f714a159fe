package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// A no-op update, which every deploy and sync runs, decides from one read without the
// migration lock: it finishes while another session holds the lock, in no more round trips
// than the gate's check, and sends no lock query. An update with something to do still takes
// the lock: it waits, gives up when the lock stays held, and applies once it is free.
func TestNoopUpdateNeedsNoLock(t *testing.T) {
	db := pgtest.New(t)
	ctx := ctxT(t, time.Minute)
	files := exampleFiles(t)
	head := writeDir(t, files)
	if _, err := newRunner(t, db, head, pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}

	// Another session holds the migration lock, taken the way every schemahook takes it.
	holder, err := pgdriver.New(ctx, db.Conn(t), load(t, head), pgdriver.Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}

	opts := pgdriver.Options{LockWait: 500 * time.Millisecond}
	r, rt := countedRunner(t, db, head, opts, nil)
	res, err := r.Update(ctx)
	if err != nil || len(res.Applied) != 0 || res.From != res.To {
		t.Fatalf("no-op update while the lock is held: %+v, %v; want nothing applied and no error", res, err)
	}
	if sent := rt.sentText(); strings.Contains(sent, "advisory") {
		t.Errorf("the no-op update sent a lock query:\n%s", sent)
	}
	gate, gateRT := countedRunner(t, db, head, opts, nil)
	if err := gate.Check(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("round trips: no-op update %d, check %d", rt.count(), gateRT.count())
	if rt.count() > gateRT.count() {
		t.Errorf("the no-op update took %d round trips, the gate's check %d: want no more", rt.count(), gateRT.count())
	}

	files["000099_after.up.sql"] = "CREATE TABLE after_noop (id int);\n"
	files["000099_after.down.sql"] = "DROP TABLE after_noop;\n"
	next := writeDir(t, files)
	if _, err := newRunner(t, db, next, opts).Update(ctx); !errors.Is(err, pgdriver.ErrLockTimeout) {
		t.Fatalf("update with a pending migration while the lock is held: %v, want ErrLockTimeout", err)
	}
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	res, err = newRunner(t, db, next, opts).Update(ctx)
	if err != nil || len(res.Applied) != 1 || res.To != 99 {
		t.Fatalf("update once the lock is free: %+v, %v; want version 99 applied", res, err)
	}
}
