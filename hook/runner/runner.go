// Package runner is schemahook's engine: it connects (waiting for the database), takes the
// migration lock, validates the database against the migration files, and initializes or
// upgrades it through golang-migrate with schemahook's transactional driver. It also answers
// the read-only questions the gate and operators ask: is the schema current, what is applied,
// what would run.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/backoff"
	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/source"
)

// Sentinel errors, each mapped to one exit code by the CLI. Errors returned by Runner wrap them
// with a message that says what to do.
var (
	// ErrDrift: an applied migration's file changed or disappeared since it was applied.
	ErrDrift = errors.New("migration drift")
	// ErrDatabaseNewer: the database is at a version this release does not know.
	ErrDatabaseNewer = errors.New("database is newer than this release")
	// ErrDirty: a no-transaction migration stopped midway; a human must look.
	ErrDirty = errors.New("database is dirty")
	// ErrNotCurrent: the schema is behind this release (Check only).
	ErrNotCurrent = errors.New("schema is not current")
)

// Runner runs schemahook's operations for one database and one migration catalog.
type Runner struct {
	cfg  *pgx.ConnConfig
	load func() (*source.Catalog, error) // once; see NewLoading
	o    options
}

type options struct {
	log       *slog.Logger
	driver    pgdriver.Options
	waitForDB time.Duration
}

// Option configures a Runner.
type Option func(*options)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithDriverOptions sets table names, lock timeout, statement timeout and migration-lock wait.
func WithDriverOptions(d pgdriver.Options) Option { return func(o *options) { o.driver = d } }

// WithWaitForDB sets how long operations wait for the database to accept connections
// (default 0: one attempt).
func WithWaitForDB(d time.Duration) Option { return func(o *options) { o.waitForDB = d } }

// New returns a Runner. cfg says where to connect (see dbconn.Config); catalog is the loaded
// migration directory.
func New(cfg *pgx.ConnConfig, catalog *source.Catalog, opts ...Option) *Runner {
	return NewLoading(cfg, func() (*source.Catalog, error) { return catalog, nil }, opts...)
}

// NewLoading returns a Runner whose catalog is read by load, once, while its first operation
// connects: reading hundreds of files and setting up a connection (TCP, authentication, a new
// server process) are the two slowest parts of a no-op update, and they do not depend on each
// other. An error from load is the operation's error; the connection is then dropped unused.
func NewLoading(cfg *pgx.ConnConfig, load func() (*source.Catalog, error), opts ...Option) *Runner {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return &Runner{cfg: cfg, load: sync.OnceValues(load), o: o}
}

// Catalog returns the migrations the runner works with, reading them if no operation has yet.
func (r *Runner) Catalog() (*source.Catalog, error) { return r.load() }

// catalog returns the catalog to code that runs after an operation has read it (open, or a
// check of Catalog's error): it is never nil there.
func (r *Runner) catalog() *source.Catalog {
	c, _ := r.load()
	return c
}

// Result describes what Update did.
type Result struct {
	From        int    // version before; pgdriver.NilVersion for an empty database
	To          int    // version after
	Applied     []uint // versions applied, in order; empty for a no-op
	Initialized bool   // the database was empty
	Adopted     bool   // history was recorded for a database migrated by golang-migrate
}

// Update brings the database to the catalog's head. It applies the pending migrations with
// consecutive transactional ones in one transaction, split at no-transaction migrations (see
// pgdriver.Driver.Upgrade and Initialize), so a failed upgrade leaves the database at the
// version it had, clean; with pgdriver.Options.CommitEach an upgrade commits each migration in
// its own transaction instead (an empty database is initialized in groups either way). When the
// database is already at head it changes nothing and returns a Result with no Applied versions
// and a nil error. It refuses, changing nothing, when the database is dirty (ErrDirty), newer
// than the catalog (ErrDatabaseNewer) or has drifted (ErrDrift). A failing migration returns a
// *pgdriver.MigrationError; the migrations committed before it stay applied: those before the
// failing one's transaction (every one before it with CommitEach).
func (r *Runner) Update(ctx context.Context) (res Result, err error) {
	s, err := r.open(ctx, r.o.waitForDB)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	// Most runs find nothing to do: every deploy and sync runs the hook. A database that is
	// clean, at head and whose history matches the files needs no lock to say so — the version
	// row is only ever committed clean with everything it stands for, so what was read is a
	// state the database was in, and a migrator that commits after the read is as if it had
	// started after this run. Anything else is read again and decided under the lock.
	if st, ok, err := s.drv.StateIfInitialized(pgdriver.Checksums); err != nil {
		return res, err
	} else if ok && r.noop(st) {
		r.o.log.Info("schema is current", "version", st.Version)
		return Result{From: st.Version, To: st.Version}, nil
	}
	err = r.lockedOn(s, func(s *session) error {
		res, err = r.update(s)
		return err
	})
	return res, err
}

func (r *Runner) update(s *session) (res Result, err error) {
	return r.upTo(s, int(r.catalog().Head().Version))
}

// upTo is update with a target: head for update, a version between the current one and head
// for goto.
func (r *Runner) upTo(s *session, target int) (res Result, err error) {
	st, err := s.drv.State(pgdriver.Checksums)
	if err != nil {
		return res, err
	}
	res = Result{From: st.Version, To: st.Version, Initialized: st.Version == pgdriver.NilVersion}
	if err := r.validate(st); err != nil {
		return res, err
	}
	defer func() {
		if err == nil {
			// Created, if missing, when the lock is released (pgdriver.Driver.EnsureReconciler).
			s.drv.EnsureReconciler()
		}
	}()
	if len(st.Reverted) > 0 {
		// Migrations reverted by another tool while the history did not follow (State.Reverted).
		r.o.log.Info("forgetting the history of migrations reverted by another tool", "version", st.Version,
			"reverted", len(st.Reverted), "first", st.Reverted[0].Version, "last", st.Reverted[len(st.Reverted)-1].Version)
		if err := s.drv.ForgetReverted(st.Version); err != nil {
			return res, err
		}
	}
	head := target
	adopt := r.adopting(st)
	if st.Version != head || adopt {
		// What follows records or runs down files: a bad one stops the update here, before
		// anything changes. A no-op never reads them.
		if err := r.catalog().ReadDowns(); err != nil {
			return res, err
		}
		if err := r.catalog().Runnable(r.catalog().After(versionPtr(st.Version))); err != nil {
			return res, err
		}
	}
	if !st.Initialized || !st.HasHistory {
		if err := s.drv.EnsureTables(); err != nil {
			return res, err
		}
	}
	if adopt {
		r.o.log.Info("recording history for migrations applied by another tool", "version", st.Version)
		if err := s.drv.Adopt(st.Version); err != nil {
			return res, err
		}
		res.Adopted = true
	}
	if st.Version == head {
		r.o.log.Info("schema is current", "version", head)
		return res, nil
	}
	pending := r.catalog().After(versionPtr(st.Version))
	r.o.log.Info(map[bool]string{true: "initializing empty database", false: "upgrading schema"}[res.Initialized],
		"from", st.Version, "to", head, "pending", len(pending))
	start := time.Now()
	up := func(m *migrate.Migrate) error {
		if head != int(r.catalog().Head().Version) {
			return m.Migrate(uint(head)) // goto
		}
		return m.Up()
	}
	switch {
	case res.Initialized && head == int(r.catalog().Head().Version):
		// Nobody uses an empty database yet: a failed first install is all or nothing whatever
		// the commit setting, and a group saves a transaction and a round trip per migration.
		err = s.drv.Initialize()
	case r.o.driver.CommitEach:
		err = s.drv.Migrate(up)
	default:
		// A release's migrations all or nothing: a failed upgrade leaves the version the
		// previous release runs on, so Helm's rollback of it finds what it expects.
		err = s.drv.Upgrade(uint(head), up)
	}
	after, _, verr := s.drv.Version()
	if verr == nil {
		res.To = after
		for _, m := range pending {
			if int(m.Version) <= after {
				res.Applied = append(res.Applied, m.Version)
			}
		}
	}
	if err != nil {
		return res, err
	}
	r.o.log.Info("schema updated", "from", st.Version, "to", res.To, "applied", len(res.Applied),
		"duration", time.Since(start).Round(time.Millisecond).String())
	return res, verr
}

// locked runs fn on a new session holding the migration lock, then unlocks and closes it,
// joining their errors to fn's.
func (r *Runner) locked(ctx context.Context, fn func(*session) error) (err error) {
	s, err := r.open(ctx, r.o.waitForDB)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	return r.lockedOn(s, fn)
}

// lockedOn runs fn on s holding the migration lock, then unlocks, joining the error to fn's.
func (r *Runner) lockedOn(s *session, fn func(*session) error) (err error) {
	if err := s.drv.Lock(); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.drv.Unlock()) }()
	return fn(s)
}

// noop reports whether st needs nothing done: clean, at head, with a history that covers
// every applied migration and matches the files.
func (r *Runner) noop(st pgdriver.State) bool {
	return st.HasHistory && !st.Dirty && st.Version == int(r.catalog().Head().Version) &&
		!r.adopting(st) && r.validate(st) == nil
}

// adopting reports whether st is a database migrated by another tool up to a version the
// history does not cover yet: the update records that history.
func (r *Runner) adopting(st pgdriver.State) bool {
	return st.Version >= 0 && len(st.History) < r.appliedCount(st.Version)
}

// appliedCount is the number of catalog migrations at or below version.
func (r *Runner) appliedCount(version int) int {
	return len(r.catalog().Migrations()) - len(r.catalog().After(versionPtr(version)))
}

func versionPtr(v int) *uint {
	if v < 0 {
		return nil
	}
	u := uint(v)
	return &u
}

// Force sets the version row to version (pgdriver.NilVersion for "nothing applied") and
// clears the dirty flag, without running any SQL: the recovery step after a human has
// finished or undone a partially applied no-transaction migration. History rows above version
// are deleted and missing ones up to it are recorded from the files.
func (r *Runner) Force(ctx context.Context, version int) error {
	if _, err := r.load(); err != nil {
		return err
	}
	if version != pgdriver.NilVersion && (version < 0 || r.catalog().Lookup(uint(version)) == nil) {
		return fmt.Errorf("%w: version %d is not in the migrations (head %d): force to a version that exists, or -1 for none",
			source.ErrInvalid, version, r.catalog().Head().Version)
	}
	if err := r.catalog().ReadDowns(); err != nil {
		return err // history rows record the down files
	}
	return r.locked(ctx, func(s *session) error {
		if err := s.drv.EnsureTables(); err != nil {
			return err
		}
		before, err := s.drv.State(pgdriver.VersionOnly)
		if err != nil {
			return err
		}
		if err := s.drv.Force(version); err != nil {
			return err
		}
		r.o.log.Info("forced schema version", "from", before.Version, "was_dirty", before.Dirty, "to", version)
		return nil
	})
}

// session is one connection with its driver.
type session struct {
	conn *pgx.Conn
	drv  *pgdriver.Driver
}

// open connects and reads the catalog (the first time) at once. A catalog error wins: it says
// what to fix, and waiting for a database that is down would only delay it.
func (r *Runner) open(ctx context.Context, wait time.Duration) (*session, error) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The dial runs on this goroutine and the reading on another, not the other way round: the
	// connection is on the critical path (the server forks and authenticates meanwhile), so its
	// first packet should not wait for the readers to be scheduled.
	loaded := make(chan error, 1)
	go func() {
		_, err := r.load()
		if err != nil {
			cancel()
		}
		loaded <- err
	}()
	conn, err := dbconn.Connect(dctx, r.cfg, wait, r.o.log)
	if lerr := <-loaded; lerr != nil {
		if conn != nil {
			lerr = errors.Join(lerr, conn.Close(context.WithoutCancel(ctx)))
		}
		return nil, lerr
	}
	if err != nil {
		return nil, err
	}
	drv, err := pgdriver.New(ctx, conn, r.catalog(), r.o.driver, r.o.log)
	if err != nil {
		return nil, errors.Join(err, conn.Close(context.WithoutCancel(ctx)))
	}
	return &session{conn: conn, drv: drv}, nil
}

func (s *session) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.conn.Close(ctx)
}

// pollPolicy spaces the gate's re-checks: quick at first (a hook usually finishes within
// seconds), then every few seconds so that many waiting pods do not load the database.
var pollPolicy = backoff.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second}
