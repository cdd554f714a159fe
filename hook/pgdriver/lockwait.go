package pgdriver

// Lock-timeout retries: who blocks a migration, and when to try again.
//
// An attempt that times out waiting for a lock has queued every later user of the table behind
// it for lock_timeout, so attempts must not follow each other while the blocker is still there;
// but a blind, growing backoff lands the migration seconds after the blocker is gone. Once an
// attempt has timed out, a second connection (opened then, never on an uncontended run) watches
// the next attempts: while the migration's connection waits, it asks pg_blocking_pids who holds
// or queues ahead for the lock, and between attempts it polls pg_locks until that transaction
// has let go of the lock — then the next attempt starts at once. The growing backoff stays the
// upper bound of every wait, so a watcher that sees nothing (or errs) only costs the old
// behaviour. pg_locks and pg_blocking_pids are readable by every role; pg_stat_activity hides
// other roles' state and query, and the messages then say so.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/backoff"
)

// watchPoll spaces the watcher's queries: a few per lock_timeout while an attempt waits, and
// between attempts often enough that a migration lands well within half a second of the
// blocker's end. Each is one small query on the lock manager that touches no table.
const watchPoll = 40 * time.Millisecond

// contention is what a blocked attempt waited for and who kept it waiting.
type contention struct {
	target   string // what it waited to lock, e.g. "table t"
	key      string // the lock's identity in pg_locks
	blockers []blocker
}

// blocker is a session holding, or queued ahead for, the lock an attempt waited for.
type blocker struct {
	pid  int
	vxid string // its transaction: the lock is held until that ends
	desc string
}

// String names the blockers for messages: the longest-running first.
func (c *contention) String() string {
	if c == nil || len(c.blockers) == 0 {
		return "a session that could not be identified"
	}
	s := c.blockers[0].desc
	if n := len(c.blockers) - 1; n > 0 {
		pids := make([]string, 0, n)
		for _, b := range c.blockers[1:] {
			pids = append(pids, fmt.Sprint(b.pid))
		}
		s += fmt.Sprintf(" and %d more (pid %s)", n, strings.Join(pids, ", "))
	}
	return s
}

// sameTransaction reports whether any blocker of c is a transaction that also blocked o.
func (c *contention) sameTransaction(o *contention) bool {
	if c == nil || o == nil || c.key != o.key {
		return false
	}
	for _, b := range c.blockers {
		if slices.ContainsFunc(o.blockers, func(x blocker) bool { return x.vxid == b.vxid }) {
			return true
		}
	}
	return false
}

// lockRetry runs the attempts of one retry loop (runTransaction, runDeferred, runStatements):
// each loop keeps its own sorting of errors and asks again whether to retry.
type lockRetry struct {
	d      *Driver
	policy backoff.Policy
	failed int // attempts that timed out waiting for a lock

	what    []any       // names the step or group in heartbeats
	mu      sync.Mutex  // the watcher's connection, used by the heartbeat as well
	side    *pgx.Conn   // the watcher's connection, opened at the first lock timeout or heartbeat
	sideErr error       // why there is none
	seen    *contention // during the last attempt
	last    *contention // the last one seen at all
	early   *contention // what the last wait saw go, when it ended before its backoff
	blind   bool        // the watcher said a blocker had gone when it had not: back off only

	// The first timeout happens before anyone watches: its warning is logged once the next
	// attempt has seen the blocker (or ended without one).
	held *heldWarning
}

type heldWarning struct {
	p     *step
	n     int
	attrs []any
	err   error
}

func (d *Driver) newLockRetry() *lockRetry {
	return &lockRetry{d: d, policy: d.retryPolicy()}
}

// retryPolicy bounds each wait between attempts: start near the lock timeout, back off to 10 s,
// with jitter so that several hooks (or a hook and a cron job) do not retry in lockstep.
func (d *Driver) retryPolicy() backoff.Policy {
	initial := d.opts.LockTimeout
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	return backoff.Policy{Initial: initial, Max: 10 * time.Second}
}

// watched runs one attempt; once a lock timeout has happened, the watcher looks meanwhile for
// what it waits on.
func (r *lockRetry) watched(attempt func()) {
	r.seen = nil
	watching := r.side != nil
	beat, beating := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beating)
		r.heartbeat(time.Now(), beat)
	}()
	defer func() {
		close(beat)
		<-beating
	}()
	if !watching {
		attempt()
		return
	}
	found := make(chan *contention, 1)
	stop := make(chan struct{})
	go func() {
		var c *contention
		defer func() { found <- c }()
		t := time.NewTimer(watchPoll / 2)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var err error
			if c, err = r.blocked(); err != nil || c != nil {
				return
			}
			t.Reset(watchPoll)
		}
	}()
	attempt()
	close(stop)
	r.seen = <-found
	if r.early != nil && r.seen.sameTransaction(r.early) {
		r.blind = true // the lock was not gone after all: never trust an early end again
	}
	r.early = nil
	r.logHeld(r.seen)
}

// again reports whether the attempt that failed with err is retried: it is a lock timeout or
// a deadlock and the context has time left. It then logs a warning naming what blocked it,
// waits until that lets go (at most the backoff) and returns true.
func (r *lockRetry) again(p *step, err error, attrs ...any) bool {
	if r.seen != nil {
		p.blocked = r.seen // also when the deadline cancelled the attempt while it waited
	}
	if !retryable(err) {
		r.logHeld(nil)
		return false
	}
	r.failed++
	p.retries++
	p.lockCode = sqlState(err)
	if r.seen == nil && r.last != nil {
		// The watcher saw nothing this time (a busy server may answer it only after the
		// attempt gave up); a transaction that blocked before and still holds the lock blocks now.
		if held, herr := r.holds(r.last); herr == nil && held {
			r.seen, p.blocked = r.last, r.last
		}
	}
	if r.seen != nil {
		r.last = r.seen
	}
	if r.d.ctx.Err() != nil {
		r.logHeld(nil)
		return false
	}
	attrs = append(attrs, "attempt", r.failed, "lock_timeout", r.d.opts.LockTimeout.String(), "sqlstate", sqlState(err))
	if r.side == nil && r.sideErr == nil {
		r.open()
		if r.side != nil {
			r.held = &heldWarning{p: p, n: r.failed, attrs: attrs, err: err}
		}
	}
	if r.held == nil || r.held.n != r.failed {
		r.warn(p, attrs, r.seen, err)
	}
	if r.wait() != nil {
		r.logHeld(nil)
		return false
	}
	return true
}

func (r *lockRetry) warn(p *step, attrs []any, c *contention, err error) {
	blockedBy := c.String()
	switch {
	case c != nil:
	case r.sideErr != nil:
		blockedBy += " (" + r.sideErr.Error() + ")"
	case sqlState(err) == pgerrcode.DeadlockDetected:
		blockedBy = "a deadlock: the server cancelled this transaction to break it"
	default:
		blockedBy += " (it was gone before it could be seen)"
	}
	if c != nil {
		attrs = append(attrs, "lock", c.target)
	}
	r.d.log.Warn("lock not available, retrying", append([]any{"version", p.mig.Version, "name", p.mig.Name, "blocked_by", blockedBy}, attrs...)...)
}

// logHeld logs the first timeout's warning with what the attempt after it saw.
func (r *lockRetry) logHeld(c *contention) {
	if h := r.held; h != nil {
		r.held = nil
		if c != nil && h.p.blocked == nil {
			h.p.blocked = c
		}
		r.warn(h.p, h.attrs, c, h.err)
	}
}

// wait sleeps before the next attempt: the backoff, ended early once the transactions that
// blocked the last attempt no longer hold or wait for its lock.
func (r *lockRetry) wait() error {
	ctx := r.d.ctx
	delay := r.policy.Delay(r.failed - 1)
	if r.side == nil || r.seen == nil || r.blind {
		return backoff.Wait(ctx, delay)
	}
	until := time.Now().Add(delay)
	for {
		if held, err := r.holds(r.seen); err != nil {
			return backoff.Wait(ctx, time.Until(until))
		} else if !held {
			if time.Now().Before(until) {
				r.early = r.seen
			}
			return nil
		}
		left := time.Until(until)
		if left <= 0 {
			return nil
		}
		if err := backoff.Wait(ctx, min(watchPoll, left)); err != nil {
			return err
		}
	}
}

// open connects the watcher, as the migration's connection did (a failure leaves the backoff
// alone to space the attempts).
func (r *lockRetry) open() {
	cfg := r.d.conn.Config().Copy()
	cfg.RuntimeParams["application_name"] = strings.TrimSpace(cfg.RuntimeParams["application_name"] + " lock watcher")
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	// A watcher's query is never interrupted (see query); a cancelled connect just ends.
	side, err := pgx.ConnectConfig(r.d.ctx, cfg)
	if err != nil {
		r.sideErr = fmt.Errorf("a second connection to see who blocks could not be opened: %w", err)
		return
	}
	r.side = side
}

// close ends the loop: a warning still held is logged, and the watcher's connection closed.
func (r *lockRetry) close() {
	r.logHeld(nil)
	if r.side != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.d.ctx), 2*time.Second)
		defer cancel()
		_ = r.side.Close(ctx) // nothing to lose: it only read pg_locks
		r.side = nil
	}
}

// query bounds a watcher query on its own: cancelling one mid-way would cost a cancel request
// to the server for nothing, and the loops check the run's context between queries.
func (r *lockRetry) query() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.d.ctx), 2*time.Second)
}

// blocked returns what the migration's connection waits to lock and who keeps it waiting, or
// nil when it is not waiting for a lock. The longest-running transaction comes first; another
// role's sessions show no start time or query, so their order is by pid.
func (r *lockRetry) blocked() (*contention, error) {
	const q = `WITH l AS MATERIALIZED (SELECT * FROM pg_locks),
	w AS (SELECT * FROM l WHERE pid = $1 AND NOT granted LIMIT 1)
	SELECT CASE w.locktype
			WHEN 'relation' THEN coalesce((SELECT CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'i' THEN 'index '
				WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view ' ELSE 'relation ' END
				FROM pg_class c WHERE c.oid = w.relation), 'relation ') || w.relation::regclass::text
			WHEN 'tuple' THEN 'a row of ' || w.relation::regclass::text
			WHEN 'transactionid' THEN 'a row changed by transaction ' || w.transactionid::text
			ELSE 'a lock of type ' || w.locktype END,
		(w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid, w.classid, w.objid, w.objsubid)::text,
		b.pid, b.virtualtransaction, b.mode, b.granted,
		coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(a.state, ''), a.xact_start, coalesce(a.query, '')
	FROM w JOIN l b ON b.pid = ANY (pg_blocking_pids($1))
		AND (b.locktype, b.database, b.relation, b.page, b.tuple, b.virtualxid, b.transactionid, b.classid, b.objid, b.objsubid)
			IS NOT DISTINCT FROM (w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid, w.classid, w.objid, w.objsubid)
	LEFT JOIN pg_stat_activity a ON a.pid = b.pid
	ORDER BY b.granted DESC, a.xact_start NULLS LAST, b.pid`
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := r.query()
	defer cancel()
	rows, err := r.side.Query(ctx, q, r.d.conn.PgConn().PID())
	if err != nil {
		return nil, err
	}
	var c *contention
	for rows.Next() {
		var (
			target, key, vxid, mode, app, role, state, query string
			pid                                              int
			granted                                          bool
			since                                            *time.Time
		)
		if err := rows.Scan(&target, &key, &pid, &vxid, &mode, &granted, &app, &role, &state, &since, &query); err != nil {
			rows.Close()
			return nil, err
		}
		if c == nil {
			c = &contention{target: target, key: key}
		}
		if slices.ContainsFunc(c.blockers, func(b blocker) bool { return b.pid == pid }) {
			continue // one row per mode it holds
		}
		c.blockers = append(c.blockers, blocker{pid: pid, vxid: vxid, desc: describe(pid, mode, granted, app, role, state, since, query)})
	}
	return c, rows.Err()
}

// holds reports whether a transaction that blocked c still holds, or waits for, c's lock.
func (r *lockRetry) holds(c *contention) (bool, error) {
	vxids := make([]string, len(c.blockers))
	for i, b := range c.blockers {
		vxids[i] = b.vxid
	}
	ctx, cancel := r.query()
	defer cancel()
	var held bool
	err := r.side.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks l WHERE l.virtualtransaction = ANY ($1::text[])
		AND (l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid, l.transactionid, l.classid, l.objid, l.objsubid)::text = $2)`,
		vxids, c.key).Scan(&held)
	return held, err
}

// describe renders a blocking session: pid, application, state, since when, and the start of
// its query — or, for another role's session, what this role may see.
func describe(pid int, mode string, granted bool, app, role, state string, since *time.Time, query string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d (application %q", pid, app)
	hidden := state == "" && since == nil
	if hidden {
		fmt.Fprintf(&b, ", role %q", role)
	} else {
		if state != "" {
			fmt.Fprintf(&b, ", %s", state)
		}
		if since != nil {
			fmt.Fprintf(&b, " since %s (%s)", since.UTC().Format("15:04:05Z"), time.Since(*since).Round(time.Second))
		}
		if q := strings.Join(strings.Fields(query), " "); q != "" {
			if r := []rune(q); len(r) > 60 {
				q = string(r[:60]) + "…"
			}
			fmt.Fprintf(&b, ", query %q", q)
		}
	}
	if granted {
		fmt.Fprintf(&b, ", holding %s", mode)
	} else {
		fmt.Fprintf(&b, ", queued ahead for %s", mode)
	}
	if hidden {
		b.WriteString("; its state and query are hidden from this role: a superuser or a member of pg_read_all_stats sees them")
	}
	b.WriteString(")")
	return b.String()
}

// stopped renders a migration stopped by the run's deadline or by a signal and rolled back:
// what it waited for and the version the database is still at. ok is false for other errors,
// and for a connection lost or a version left dirty, which Error words as before.
func (e *MigrationError) stopped() (msg string, ok bool) {
	if e.Dirty || e.Unknown || !(e.Deadline || e.Interrupted) {
		return "", false
	}
	from := NilVersion
	if e.Step != nil {
		from = e.Step.from
	}
	if e.group != nil {
		from = e.group.from
	}
	still := "still at " + versionName(from) + ", clean"
	if e.group != nil {
		still += fmt.Sprintf(" (nothing of %s was applied: %s)", e.group.span(), e.group.why())
	}
	attempts := e.Retries
	if !retryable(e.Err) && sqlState(e.Err) != "" {
		attempts++ // the attempt the deadline or the signal cancelled on the server
	}
	waited := e.Retries > 0 || retryable(e.Err) || e.blocked != nil
	target := "the locks it needs"
	if e.blocked != nil {
		target = e.blocked.target
	}
	var b strings.Builder
	switch {
	case e.Interrupted:
		cause := "cancelled"
		if e.cause != nil {
			cause = e.cause.Error()
		}
		fmt.Fprintf(&b, "migration %s: interrupted; rolled back; %s (%s%s) — ", e.File, still, cause, strings.TrimSuffix(strings.Replace(e.sqlState(""), " (", "; ", 1), ")"))
		if waited {
			fmt.Fprintf(&b, "it was waiting to lock %s, blocked by %s; ", target, e.blocked)
		}
		b.WriteString("run the update again")
	case waited:
		fmt.Fprintf(&b, "migration %s: gave up after %d attempts to lock %s (lock_timeout %s): blocked by %s; %s%s — "+
			"end that transaction (or wait for it to end) and run the update again; --timeout bounds how long the update keeps retrying",
			e.File, attempts, target, e.lockTimeout, e.blocked, still, e.sqlState(e.lockCode))
	default:
		fmt.Fprintf(&b, "migration %s: the deadline (--timeout) passed while it ran; rolled back; %s%s — raise --timeout, or make the migration faster, and run the update again",
			e.File, still, e.sqlState(""))
	}
	return b.String(), true
}

// sqlState renders the server's code (code, else the error's) and where in the file, for
// stopped's messages.
func (e *MigrationError) sqlState(code string) string {
	var parts []string
	if c := cmp.Or(code, sqlState(e.Err), e.lockCode); c != "" {
		parts = append(parts, "SQLSTATE "+c)
	}
	if e.Line > 0 {
		parts = append(parts, fmt.Sprintf("at line %d", e.Line))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " ") + ")"
}
