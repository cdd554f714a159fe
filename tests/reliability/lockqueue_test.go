package reliability

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLockQueueNeverStallsReaders: a long transaction holds ACCESS SHARE on a table that a
// migration must ALTER. With lock_timeout 200ms the migration's ALTER waits in the lock queue
// — where it blocks every new reader of the table — for at most 200ms per attempt, rolls back,
// backs off and retries, and lands soon after the holder ends, not when a grown backoff says.
// A reader querying the table ~20 times a second meanwhile is never blocked for long, and
// every retry warning names the holder.
func TestLockQueueNeverStallsReaders(t *testing.T) {
	const (
		readerBound = 2 * time.Second // generous: lock_timeout is 200ms
		// The holder ends right after the 6th retry warning. A blind backoff (200ms doubling,
		// half of it jitter) then sleeps at least 3.2s before the next attempt; waiting on the
		// holder itself lands within a few polls of its end. The bound sits between the two.
		warnings  = 6
		landBound = 2 * time.Second
	)
	db := newDB(t)
	files := map[string]string{
		"000001_t.up.sql":   "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);\nINSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;\n",
		"000001_t.down.sql": "DROP TABLE t;\n",
	}
	if r := run(t, db.URL, migrationsEnv(writeDir(t, files)), "update"); r.code != exitOK {
		t.Fatalf("initial update: exit %d", r.code)
	}
	ctx := context.Background()
	holderPID, release := holdTable(t, db.URL, "forgotten-report") // ACCESS SHARE until release
	holding := time.Now()

	// The reader: an application querying the table throughout.
	reader := connect(t, db.URL)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		readErr   error
	)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			began := time.Now()
			var v string
			err := reader.QueryRow(ctx, "SELECT v FROM t WHERE id = $1", 1+i%1000).Scan(&v)
			mu.Lock()
			latencies = append(latencies, time.Since(began))
			if err != nil && readErr == nil {
				readErr = err
			}
			mu.Unlock()
		}
	}()

	files["000002_note.up.sql"] = "ALTER TABLE t ADD COLUMN note text NOT NULL DEFAULT 'n';\n"
	files["000002_note.down.sql"] = "ALTER TABLE t DROP COLUMN note;\n"
	p := start(t, db.URL, migrationsEnv(writeDir(t, files)), "update", "--lock-timeout", "200ms", "--timeout", "60s")
	p.assertArgsClean()
	// Hold until the migration has retried enough for a blind backoff to have grown.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.stderr.String(), "lock not available, retrying") < warnings {
		select {
		case <-p.done:
			t.Fatalf("update finished while the lock was held: exit %d\n%s", p.res.code, p.res.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("update did not retry while the lock was held:\n%s", p.stderr.String())
		}
	}
	release()
	released := time.Now()
	r := p.wait(60 * time.Second)
	landed := time.Since(released)
	time.Sleep(300 * time.Millisecond) // a few more reads after the ALTER committed
	close(stop)
	<-readerDone

	if r.code != exitOK {
		t.Fatalf("update after the holder ended: exit %d\n%s", r.code, r.stderr)
	}
	if readErr != nil {
		t.Fatalf("a reader query failed: %v", readErr)
	}
	c := connect(t, db.AdminURL)
	var retries int
	var hasNote bool
	if err := c.QueryRow(ctx, `SELECT (SELECT retries FROM schemahook_history WHERE version = 2),
		EXISTS (SELECT FROM information_schema.columns WHERE table_name = 't' AND column_name = 'note')`).Scan(&retries, &hasNote); err != nil {
		t.Fatal(err)
	}
	if !hasNote || retries < warnings {
		t.Fatalf("after the update: column note %t, %d retries recorded; want the column and ≥%d retries", hasNote, retries, warnings)
	}
	blocker := fmt.Sprintf(`pid %d (application "forgotten-report", idle in transaction since `, holderPID)
	for i, w := range retryWarnings(r.stderr) {
		if !strings.HasPrefix(w, blocker) {
			t.Errorf("retry warning %d says blocked_by %q, want it to start with %q", i+1, w, blocker)
		}
	}
	if landed > landBound {
		t.Errorf("the migration landed %s after the holder ended, want < %s: it slept a grown backoff instead of watching the holder", landed.Round(time.Millisecond), landBound)
	}
	slices.Sort(latencies)
	n := len(latencies)
	worst := latencies[n-1]
	t.Logf("lock held %s; migration retried %d times and landed %s after release; %d reader queries: median %s, p99 %s, max %s",
		released.Sub(holding).Round(time.Millisecond), retries, landed.Round(time.Millisecond), n,
		latencies[n/2].Round(time.Microsecond), latencies[n*99/100].Round(time.Microsecond), worst.Round(time.Millisecond))
	if n < 40 {
		t.Errorf("only %d reader queries ran; the reader did not run throughout", n)
	}
	if worst > readerBound {
		t.Errorf("a reader was blocked %s behind the queued migration, want < %s", worst, readerBound)
	}
}
