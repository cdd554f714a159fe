package reliability

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/schemahook/schemahook/hook/backoff"
)

// lateContext has a deadline that has passed while its Err is still nil: what every context
// looks like between its deadline and the moment its timer fires, which on a busy node can be
// milliseconds.
type lateContext struct{ context.Context }

func (lateContext) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// Every retry loop (connecting, the migration lock, lock-timeout retries, the gate) stops when
// Sleep returns an error. Sleep must report a passed deadline even before ctx.Err() does, or
// the loop retries without sleeping until the timer fires — a burst of attempts against a
// database that is down.
func TestBackoffSleepReportsPassedDeadline(t *testing.T) {
	p := backoff.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	for attempt := range 5 {
		if err := p.Sleep(lateContext{context.Background()}, attempt); err == nil {
			t.Fatalf("Sleep(attempt %d) after the deadline returned nil: the caller would retry at once", attempt)
		}
	}
}

var attemptsCountRE = regexp.MustCompile(`\(([0-9]+) attempts\)`)

// TestWaitForDBBackoffUnderLoad: ten hooks waiting 300ms for a database that is down, at once
// on a busy node, each give up after a handful of attempts (100ms doubling: about 3), never a
// burst at the deadline.
func TestWaitForDBBackoffUnderLoad(t *testing.T) {
	const hooks, most = 10, 8
	addr := closedAddr(t)
	password := "pw-" + randomHex(16)
	addSecret(t, password)
	dsn := "postgres://app:" + password + "@" + addr + "/app?sslmode=disable"
	var wg sync.WaitGroup
	attempts := make([]int, hooks)
	for i := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := start(t, dsn, nil, "update", "--wait-for-db", "300ms").wait(30 * time.Second)
			m := attemptsCountRE.FindStringSubmatch(r.messages())
			if r.code != exitTimeout || m == nil {
				t.Errorf("hook %d: exit %d, want %d with an attempt count:\n%s", i, r.code, exitTimeout, r.stderr)
				return
			}
			attempts[i], _ = strconv.Atoi(m[1])
		}()
	}
	wg.Wait()
	t.Logf("connection attempts per hook within --wait-for-db 300ms: %v", attempts)
	for i, n := range attempts {
		if n > most {
			t.Errorf("hook %d made %d connection attempts in 300ms, want at most %d (backoff from 100ms)", i, n, most)
		}
	}
}
