package runner

// The gate listens: update announces every version it commits on pgdriver.NotifyChannel, in
// the transaction that commits it, so `check --wait` re-reads the version the moment it
// changes instead of at its next poll (up to pollPolicy's maximum later). Polling stays, at the
// same pace: a notification can be lost with its connection, and a pooler in transaction mode
// (PgBouncer) accepts LISTEN but delivers nothing — the gate is then as fast as before, never
// slower. A check that finds the schema current at once costs nothing more: the listening
// connection is opened only once the gate has to wait.

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/schemahook/schemahook/hook/backoff"
	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
)

// listener is CheckWait's listening session; the zero value listens to nothing.
type listener struct {
	s      *session
	failed bool // LISTEN could not be set up: poll only
}

// check runs Check, on the listening session when there is one. When that session fails for
// another reason than the schema, it is dropped and the check made on a new connection, which
// reports the database's state as Check does.
func (l *listener) check(r *Runner, ctx context.Context) error {
	if l.s == nil {
		return r.Check(ctx)
	}
	err := r.checkOn(l.s)
	if schemaAnswer(err) {
		return err
	}
	r.o.log.Debug("the listening connection failed; checking on a new one", "error", dbconn.Redact(err.Error()))
	l.close()
	return r.Check(ctx)
}

// schemaAnswer reports whether err is Check's answer about the schema (nil included), as opposed
// to a failure to ask.
func schemaAnswer(err error) bool {
	return err == nil || errors.Is(err, ErrNotCurrent) || errors.Is(err, ErrDirty) ||
		errors.Is(err, ErrDatabaseNewer) || errors.Is(err, ErrDrift)
}

// start opens the listening session after a check that the server answered (last), unless one
// is open or could not be set up before. It reports whether it did: the caller then checks
// again at once, since a version committed between the last check and LISTEN sent nothing to
// this session.
func (l *listener) start(r *Runner, ctx context.Context, last error) bool {
	if l.s != nil || l.failed || !schemaAnswer(last) {
		return false
	}
	cfg := r.cfg.Copy()
	// Waiting for a notification ends at a deadline; the CLI's default, a cancel request to the
	// server, would have nothing to cancel and could reach the next check's query instead.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := dbconn.Connect(ctx, cfg, 0, r.o.log)
	if err == nil {
		if _, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{pgdriver.NotifyChannel}.Sanitize()); err != nil {
			err = errors.Join(err, conn.Close(context.WithoutCancel(ctx)))
		}
	}
	var drv *pgdriver.Driver
	if err == nil {
		if drv, err = pgdriver.New(ctx, conn, r.catalog(), r.o.driver, r.o.log); err != nil {
			err = errors.Join(err, conn.Close(context.WithoutCancel(ctx)))
		}
	}
	if err != nil {
		l.failed = true
		r.o.log.Debug("cannot listen for schema changes; polling only", "error", dbconn.Redact(err.Error()))
		return false
	}
	l.s = &session{conn: conn, drv: drv}
	return true
}

// wait returns after d, or as soon as a version at or above the head (or one it cannot read)
// is announced, or the listening connection fails; the error is ctx's when it ended.
func (l *listener) wait(r *Runner, ctx context.Context, d time.Duration) error {
	if l.s == nil {
		return backoff.Wait(ctx, d)
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	head := int(r.catalog().Head().Version)
	for {
		n, err := l.s.conn.WaitForNotification(wctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() != nil:
			return nil // poll
		case err != nil:
			r.o.log.Debug("the listening connection failed; polling", "error", dbconn.Redact(err.Error()))
			l.close()
			return nil
		}
		// The steps of an upgrade commit one by one: only the last can make the schema current.
		if n == nil {
			return nil
		}
		if v, perr := strconv.Atoi(n.Payload); perr != nil || v >= head {
			return nil
		}
	}
}

func (l *listener) close() {
	if l.s != nil {
		_ = l.s.close() // it only read
		l.s = nil
	}
}
