package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// Every path that commits a version announces it on the notification channel, in the
// transaction that commits it: an initial install's group (each of its versions), a migration
// sent in one query, a no-transaction file, and a file that takes two round trips.
func TestUpdateAnnouncesEachCommittedVersion(t *testing.T) {
	db := pgtest.New(t)
	ctx := ctxT(t, 2*time.Minute)
	listen := db.Conn(t)
	if _, err := listen.Exec(ctx, "LISTEN "+pgdriver.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	files := tableFiles(3)
	files["000004_idx.up.sql"] = "-- schemahook:no-transaction\nCREATE INDEX CONCURRENTLY t3_note ON t3 (note);\n"
	files["000004_idx.down.sql"] = "DROP INDEX t3_note;\n"
	files["000005_t5.up.sql"] = "CREATE TABLE t5 (id int);\n"
	files["000005_t5.down.sql"] = "DROP TABLE t5;\n"
	upTo := func(n int) map[string]string {
		out := map[string]string{}
		for name, sql := range files {
			var v int
			if _, err := fmt.Sscanf(name, "%06d", &v); err == nil && v <= n {
				out[name] = sql
			}
		}
		return out
	}
	steps := []struct {
		name   string
		to     int
		params map[string]string
		want   []string
	}{
		{"initial install, one group", 2, nil, []string{"1", "2"}},
		{"upgrade, one query", 3, nil, []string{"3"}},
		{"no-transaction file", 4, nil, []string{"4"}},
		// Literals need standard_conforming_strings: without it the file and its rows take two round trips.
		{"two round trips", 5, map[string]string{"standard_conforming_strings": "off"}, []string{"5"}},
	}
	for _, s := range steps {
		r, _ := countedRunner(t, db, writeDir(t, upTo(s.to)), pgdriver.Options{}, s.params)
		if res, err := r.Update(ctx); err != nil || res.To != s.to {
			t.Fatalf("%s: update to %d: %+v, %v", s.name, s.to, res, err)
		}
		if got := notifications(t, listen, len(s.want)); strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Errorf("%s: notifications %q, want %q", s.name, got, s.want)
		}
	}
	// A no-op announces nothing.
	r, _ := countedRunner(t, db, writeDir(t, upTo(5)), pgdriver.Options{}, nil)
	if _, err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if got := notifications(t, listen, 1); len(got) != 0 {
		t.Errorf("a no-op update sent notifications %q", got)
	}
}

// notifications returns the payloads on the channel, waiting up to a second for each of n.
func notifications(t *testing.T, c *pgx.Conn, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		note, err := c.WaitForNotification(ctx)
		cancel()
		if err != nil {
			break
		}
		if note.Channel == pgdriver.NotifyChannel {
			got = append(got, note.Payload)
		}
	}
	return got
}

// The gate opens when the schema's version commits, not at its next poll. By the time the
// update runs, polls are 2.5–5 s apart, and it runs just after one: a gate that only polled
// would open no sooner than about 2 s after the commit.
func TestCheckWaitOpensAtCommit(t *testing.T) {
	db := pgtest.New(t)
	ctx := ctxT(t, time.Minute)
	dir := writeDir(t, tableFiles(2))
	gate, rt := countedRunner(t, db, dir, pgdriver.Options{}, nil)
	type outcome struct {
		err error
		at  time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		err := gate.CheckWait(ctx, 45*time.Second)
		done <- outcome{err, time.Now()}
	}()
	time.Sleep(9 * time.Second)
	// Wait for a poll (round trips of the gate's), and for it to end.
	before, polled := rt.count(), time.Now().Add(6*time.Second)
	for rt.count() == before && time.Now().Before(polled) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case o := <-done:
		t.Fatalf("check --wait returned before the update: %v", o.err)
	default:
	}
	if _, err := newRunner(t, db, dir, pgdriver.Options{}).Update(ctx); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("check --wait: %v", o.err)
		}
		took := o.at.Sub(updated)
		t.Logf("the gate opened %v after the update returned", took)
		if took > 1500*time.Millisecond {
			t.Errorf("the gate opened %v after the update; want it within 1.5 s of the commit", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("check --wait still waiting 10 s after the update")
	}
}
