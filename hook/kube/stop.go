package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Stopped records the workloads Stop scaled to zero and their previous replicas, so that they
// can be restored.
type Stopped struct {
	c         *Client
	log       *slog.Logger
	Workloads []Workload // as they were before Stop: Replicas is the count to restore
}

// Stop scales every Deployment and StatefulSet matching selector to zero and waits, at most
// timeout, until no pod matching each one's pod selector is left (terminating pods count: they
// can still write). Workloads already at zero are left alone but still waited for. self is the
// caller's pod name, never waited for. No match → a Stopped with no workloads and a nil error
// (logged as a warning: a selector that matches nothing is probably a typo).
//
// On any failure, including the timeout (ErrStopTimeout), Stop restores the workloads it had
// scaled before it returns, and joins the restore errors to its own.
func (c *Client) Stop(ctx context.Context, selector string, timeout time.Duration, self string, log *slog.Logger) (*Stopped, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Stopped{c: c, log: log}
	ws, err := c.List(ctx, selector)
	if err != nil {
		return s, fmt.Errorf("listing the workloads to stop (selector %q): %w", selector, err)
	}
	if len(ws) == 0 {
		log.Warn("no Deployment or StatefulSet matches the stop-workloads selector: nothing to stop", "selector", selector, "namespace", c.namespace)
		return s, nil
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) (*Stopped, error) {
		return s, errors.Join(err, s.Restore(context.WithoutCancel(ctx)))
	}
	for _, w := range ws {
		if w.Replicas == 0 {
			log.Info("workload already at 0 replicas", "workload", w.String())
			continue
		}
		if err := c.Scale(wctx, w, 0); err != nil {
			return fail(fmt.Errorf("scaling %s to 0: %w", w, err))
		}
		s.Workloads = append(s.Workloads, w)
		log.Info("scaled workload to 0 before migrating", "workload", w.String(), "replicas_before", w.Replicas)
	}
	for _, w := range ws {
		var left []string // as of the last answer: a list cut short by the deadline says nothing
		for {
			pods, err := c.Pods(wctx, w, self)
			if err == nil {
				left = pods
				if len(left) == 0 {
					break
				}
			}
			if err != nil && wctx.Err() == nil {
				return fail(fmt.Errorf("listing the pods of %s: %w", w, err))
			}
			select {
			case <-wctx.Done():
			case <-time.After(c.poll):
				continue
			}
			if ctx.Err() != nil {
				return fail(fmt.Errorf("waiting for the pods of %s to stop: %w", w, ctx.Err()))
			}
			return fail(fmt.Errorf("%w (%w): after %s, %d pod(s) of %s are still there (%s) — raise the stop timeout "+
				"(--stop-timeout, schemaUpdate.stopWorkloads.timeout) or shorten their terminationGracePeriodSeconds; "+
				"the workloads were scaled back and the migration did not run",
				ErrStopTimeout, context.DeadlineExceeded, timeout, len(left), w, strings.Join(first(left, 5), ", ")))
		}
	}
	log.Info("workloads stopped", "count", len(ws), "duration", time.Since(start).Round(time.Millisecond).String())
	return s, nil
}

// Restore scales every workload Stop stopped back to its previous replicas. It tries all of
// them and joins the errors; nothing stopped → nil.
func (s *Stopped) Restore(ctx context.Context) error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var errs []error
	for _, w := range s.Workloads {
		if err := s.c.Scale(ctx, w, w.Replicas); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s to %d replicas: %w (scale it back by hand: kubectl -n %s scale %s --replicas=%d)",
				w, w.Replicas, err, s.c.namespace, strings.ToLower(w.String()), w.Replicas))
			continue
		}
		s.log.Info("restored workload replicas", "workload", w.String(), "replicas", w.Replicas)
	}
	return errors.Join(errs...)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}
