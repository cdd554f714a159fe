package integration

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/bluegreen"
)

// upgradedSite is a base at version 2 whose release moved to a copy at 2, then upgraded to a
// copy at 5: the chain base → __v2 → __v5, with __v5 serving and __v2 the way back.
func upgradedSite(t *testing.T) *bgSite {
	s := newBGSite(t)
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, upTo(exampleFiles(t), 2)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	s.with(s.base, func(c *pgx.Conn) { seed(t, c, 50) })
	s.activate(2, bluegreen.Options{})
	if res := s.activate(5, bluegreen.Options{}); res.Action != bluegreen.Copied || res.From != s.name(2) {
		t.Fatalf("upgrade = %+v", res)
	}
	return s
}

// Switching back after the newer database took writes is refused by the hook/guard and by the
// gate, saying what would be lost; nothing changes, the newer database keeps serving and can
// still be written. Accepting the loss switches back, with no down migration.
func TestSwitchBackRefusedAfterWrites(t *testing.T) {
	s := upgradedSite(t)
	ctx := ctxT(t, time.Minute)
	catOld, dataOld := s.snapshot(s.name(2))
	if err := s.write(s.name(5), 3); err != nil {
		t.Fatal(err)
	}

	// The gate of an old pod (read-only: no session ended, the write was flushed).
	err := s.engine(2, bluegreen.Options{}).Check(ctx, s.name(2))
	if !errors.Is(err, bluegreen.ErrWriteLoss) {
		t.Fatalf("gate check = %v, want ErrWriteLoss", err)
	}
	mustContain(t, err, s.name(5), "public.accounts (3 inserted, 0 updated, 0 deleted)", "acceptWriteLoss=true")

	// The guard (or the hook of an older revision's sync).
	res, err := s.engine(2, bluegreen.Options{}).Activate(ctx)
	if !errors.Is(err, bluegreen.ErrWriteLoss) || res.Action != bluegreen.SwitchBack {
		t.Fatalf("switch back = %+v, %v; want refused with ErrWriteLoss", res, err)
	}
	mustContain(t, err, "3 row write(s)", "public.accounts (3 inserted", "nothing was changed")
	if s.serving() != s.name(5) || s.frozen(s.name(5)) || !s.frozen(s.name(2)) {
		t.Fatalf("after the refusal: serving %s, frozen new %t old %t", s.serving(), s.frozen(s.name(5)), s.frozen(s.name(2)))
	}
	if err := s.write(s.name(5), 1); err != nil {
		t.Fatalf("the serving database no longer takes writes after the refusal: %v", err)
	}

	// Accepted: switched back to the untouched older database, unfrozen.
	res, err = s.engine(2, bluegreen.Options{AcceptWriteLoss: true}).Activate(ctx)
	if err != nil || res.Action != bluegreen.SwitchBack || len(res.Lost) != 1 {
		t.Fatalf("accepted switch back = %+v, %v", res, err)
	}
	if s.serving() != s.name(2) || s.frozen(s.name(2)) || !s.frozen(s.name(5)) {
		t.Fatalf("after switching back: serving %s, frozen old %t new %t", s.serving(), s.frozen(s.name(2)), s.frozen(s.name(5)))
	}
	if cat, data := s.snapshot(s.name(2)); cat != catOld || !equalMaps(data, dataOld) {
		t.Fatal("the older database changed while switching back (a down migration?)")
	}
	if err := s.write(s.name(2), 1); err != nil {
		t.Fatalf("the older database does not take writes once it serves again: %v", err)
	}
	// The newer copy's pods are refused by their gate: their data is stale.
	if err := s.engine(5, bluegreen.Options{}).Check(ctx, s.name(5)); !errors.Is(err, bluegreen.ErrNotServing) {
		t.Fatalf("gate of the newer release after the switch back = %v, want ErrNotServing", err)
	}
	// Upgrading again copies afresh from the older database, with the write made there.
	if res := s.activate(5, bluegreen.Options{}); res.Action != bluegreen.Copied || res.From != s.name(2) {
		t.Fatalf("upgrade after the switch back = %+v", res)
	}
	var n int
	s.with(s.name(5), func(c *pgx.Conn) {
		_ = c.QueryRow(context.Background(), `SELECT count(*) FROM accounts`).Scan(&n)
	})
	if n != 51 {
		t.Fatalf("the new copy has %d accounts, want 51 (50 seeded + 1 written after the switch back)", n)
	}
}

// Without writes, switching back needs nothing accepted, and the gate lets an old pod start
// (on the still-frozen older database) until a hook switches.
func TestSwitchBackWithoutWrites(t *testing.T) {
	s := upgradedSite(t)
	ctx := ctxT(t, time.Minute)
	// Reads do not count.
	s.with(s.name(5), func(c *pgx.Conn) {
		var n int
		_ = c.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n)
	})
	if err := s.engine(2, bluegreen.Options{}).Check(ctx, s.name(2)); err != nil {
		t.Fatalf("gate check without writes: %v", err)
	}
	res, err := s.engine(2, bluegreen.Options{}).Activate(ctx)
	if err != nil || res.Action != bluegreen.SwitchBack || len(res.Lost) != 0 {
		t.Fatalf("switch back = %+v, %v", res, err)
	}
	if s.serving() != s.name(2) {
		t.Fatalf("serving %s", s.serving())
	}
	// Back to the base, which predates the copy strategy: allowed as a switch back.
	if res, err := s.engineFor(s.base, 2).Activate(ctx); err != nil || res.Action != bluegreen.SwitchBack {
		t.Fatalf("switch back to the base = %+v, %v", res, err)
	}
	if s.frozen(s.base) {
		t.Fatal("the base is still frozen after serving again")
	}
}

// Retention keeps the newest copies and never drops the serving database, the one it was
// copied from, or the base.
func TestCopyRetention(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, upTo(exampleFiles(t), 1)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	lineage := bluegreen.DefaultLineage(s.base)
	for v := 1; v <= 4; v++ {
		res := s.activate(v, bluegreen.Options{Keep: 2})
		want := []string{s.base, lineage}
		for w := max(1, v-1); w <= v; w++ {
			want = append(want, s.name(w))
		}
		slices.Sort(want)
		if got := s.databases(); !slices.Equal(got, want) {
			t.Fatalf("after v%d (dropped %v): databases %v, want %v", v, res.Dropped, got, want)
		}
	}
	// Keep 1: the serving copy and the way back stay anyway.
	res := s.activate(5, bluegreen.Options{Keep: 1})
	if !slices.Equal(res.Dropped, []string{s.name(3)}) {
		t.Fatalf("keep 1 dropped %v, want only %s", res.Dropped, s.name(3))
	}
	if got := s.databases(); !slices.Equal(got, []string{s.base, lineage, s.name(4), s.name(5)}) {
		t.Fatalf("databases %v", got)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Two hooks at once (a retried Job next to the first, two syncs): the lineage lock lets one
// copy while the other waits, then finds the copy serving and changes nothing.
func TestCopyConcurrentHooks(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, upTo(exampleFiles(t), 2)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	s.with(s.base, func(c *pgx.Conn) { seed(t, c, 100) })
	s.activate(5, bluegreen.Options{}) // creates the lineage, so both runs below take its lock
	s.activate(2, bluegreen.Options{Target: s.base, AcceptWriteLoss: true})
	type out struct {
		res bluegreen.Result
		err error
	}
	results := make(chan out, 2)
	for range 2 {
		go func() {
			res, err := s.engine(4, bluegreen.Options{}).Activate(ctx)
			results <- out{res, err}
		}()
	}
	var actions []string
	for range 2 {
		o := <-results
		if o.err != nil {
			t.Fatalf("concurrent activate: %v", o.err)
		}
		actions = append(actions, string(o.res.Action))
	}
	slices.Sort(actions)
	if !slices.Equal(actions, []string{"copied", "current"}) {
		t.Fatalf("actions %v, want one copied and one current", actions)
	}
	if s.serving() != s.name(4) {
		t.Fatalf("serving %s", s.serving())
	}
}

// A switch back killed after freezing the serving database, before the lineage moved, leaves
// that database serving and read-only; the next run of any release's hook or guard unfreezes it.
func TestCopyRecoversAKilledSwitchBack(t *testing.T) {
	s := upgradedSite(t)
	ctx := ctxT(t, time.Minute)
	// What switchBack has done at that point: the serving database frozen, and so recorded.
	s.with(bluegreen.DefaultLineage(s.base), func(c *pgx.Conn) {
		if _, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{s.name(5)}.Sanitize()+" SET default_transaction_read_only = on"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, `UPDATE schemahook_copies SET frozen = true WHERE name = $1`, s.name(5)); err != nil {
			t.Fatal(err)
		}
	})
	if !s.frozen(s.name(5)) {
		t.Fatal("setup: the serving database is not frozen")
	}
	res, err := s.engine(5, bluegreen.Options{}).Activate(ctx)
	if err != nil || res.Action != bluegreen.Current {
		t.Fatalf("re-run of the serving release = %+v, %v", res, err)
	}
	if s.serving() != s.name(5) || s.frozen(s.name(5)) {
		t.Fatalf("after the re-run: serving %s, frozen %v; want %s serving and writable", s.serving(), s.frozen(s.name(5)), s.name(5))
	}
}
