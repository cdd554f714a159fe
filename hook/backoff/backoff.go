// Package backoff computes capped exponential delays with full jitter and sleeps them under a
// context, so that retry loops across the binary share one policy and never outlive a deadline.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes an exponential backoff: Initial, doubled per attempt, never above Max.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
}

// Delay returns the jittered delay before retry number attempt (0-based). Jitter is "equal
// jitter": half the exponential step plus a random half, so concurrent retriers spread out but
// no delay collapses to zero (a zero delay would hammer a database that is starting up).
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Initial
	for i := 0; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	if d > p.Max {
		d = p.Max
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Sleep waits for the delay of the given attempt, or until ctx ends. It returns ctx.Err() when
// the context ended first. A delay that would pass the context's deadline is shortened to end
// at the deadline, so the caller gets one last attempt instead of sleeping past its budget.
func (p Policy) Sleep(ctx context.Context, attempt int) error {
	return Wait(ctx, p.Delay(attempt))
}

// Wait waits for d, or until ctx ends, by Sleep's rules: it returns ctx.Err() when the context
// ended first, shortens a delay that would pass the context's deadline, and returns
// context.DeadlineExceeded at once when the deadline has passed.
func Wait(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			// Past the deadline, ctx.Err() is still nil until the context's timer fires, which
			// on a busy node can take milliseconds; returning it would let the caller retry at
			// once, again and again — a burst of attempts at every deadline.
			return context.DeadlineExceeded
		}
		d = min(d, left)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
