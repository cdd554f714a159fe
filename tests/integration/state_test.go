package integration

import (
	"context"
	"testing"
	"time"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// State trusts what the driver saw of the tables when it connected only while that stays
// true: tables created by another run after it connected are found, and a table dropped behind
// its back reads as missing instead of failing every later read.
func TestStateFollowsTablesCreatedOrDroppedMeanwhile(t *testing.T) {
	db := pgtest.New(t)
	ctx := ctxT(t, time.Minute)
	dir := writeDir(t, upTo(exampleFiles(t), 2))
	drv, err := pgdriver.New(ctx, db.Conn(t), load(t, dir), pgdriver.Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := drv.State(pgdriver.Checksums)
	if err != nil || st.Initialized || st.HasHistory || st.Version != pgdriver.NilVersion {
		t.Fatalf("empty database: state %+v, %v", st, err)
	}

	// Another run initializes the database while this driver's session stays open.
	if _, err := newRunner(t, db, dir, pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	for _, detail := range []pgdriver.Detail{pgdriver.VersionOnly, pgdriver.Checksums, pgdriver.FullHistory} {
		st, err = drv.State(detail)
		if err != nil || !st.Initialized || !st.HasHistory || st.Version != 2 || st.Dirty {
			t.Fatalf("after another run's update, detail %d: state %+v, %v", detail, st, err)
		}
		if want := map[pgdriver.Detail]int{pgdriver.VersionOnly: 0, pgdriver.Checksums: 2, pgdriver.FullHistory: 2}[detail]; len(st.History) != want {
			t.Fatalf("detail %d: %d history rows, want %d", detail, len(st.History), want)
		}
	}
	if h := st.History; h[0].Version != 1 || h[1].Version != 2 || h[1].Checksum == "" || h[1].DownSQL == nil || h[1].AppliedBy != "integration-test" {
		t.Fatalf("full history = %+v", h)
	}

	// Now the history table goes (a golang-migrate-only setup, or a human).
	if _, err := db.Conn(t).Exec(context.Background(), "DROP TABLE schemahook_history"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		st, err = drv.State(pgdriver.Checksums)
		if err != nil || !st.Initialized || st.HasHistory || st.Version != 2 || len(st.History) != 0 {
			t.Fatalf("after dropping the history table: state %+v, %v", st, err)
		}
	}
}
