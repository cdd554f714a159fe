// Package pgdriver is schemahook's golang-migrate database driver on pgx v5.
//
// golang-migrate runs each migration as SetVersion(v, dirty=true) → Run(body) →
// SetVersion(v, dirty=false), and its own postgres drivers commit each of those separately, so
// a failing file leaves the version "dirty". This driver keeps golang-migrate's loop and changes
// only what a driver decides:
//
//   - transaction scope: a file, its version row and its history row commit together. A
//     failure rolls everything back: the database stays at the previous version, clean.
//     Files marked "-- schemahook:no-transaction" run statement by statement outside a
//     transaction (CREATE INDEX CONCURRENTLY needs that) and are the only ones that can leave
//     the version dirty.
//   - round trips: each costs more than the server's work on a small migration
//     (docs/benchmarks.md), so SetVersion(dirty) only records the step, Run only checks the
//     file, and SetVersion(clean) sends BEGIN, the file, the rows and COMMIT as one
//     simple-protocol query. That protocol has no parameters: the rows' values are literals,
//     which is safe only with standard_conforming_strings on and after a file that ends
//     outside any quote or comment. A file that fails that test takes two round trips: Run
//     sends it in an open transaction, whose status shows whether the file ended it (the
//     catalog refuses transaction control of a file's own; this is the safety net), and
//     SetVersion(clean) writes the rows and commits.
//   - groups: on an initial install (Initialize) and, by default, on an upgrade (Upgrade),
//     consecutive transactional migrations commit together — the same version and history
//     rows, one transaction and one query for all of them, sent with the last — so a failed
//     run leaves the database at the version it started from, clean: empty for a first
//     install, the previous release's version for an upgrade, which is what Helm's rollback
//     of a failed upgrade expects. A no-transaction file (or one that needs two round trips)
//     ends such a group: the group commits before it runs. The price on an upgrade is that the
//     locks of every migration in the group are held until it commits; Options.CommitEach
//     commits each migration on its own instead (Migrate).
//   - lock waits: every transaction starts with SET LOCAL lock_timeout, and a statement that
//     times out waiting for a lock (SQLSTATE 55P03) or is chosen as a deadlock victim (40P01) is
//     retried with backoff until the context's deadline, so a migration queued behind a long
//     transaction never stalls the table's other users for longer than the lock timeout. After
//     the first timeout a second connection names the blocker and ends the backoff as soon as
//     the blocking transaction lets go (lockwait.go).
//   - the migration lock: pg_try_advisory_lock polled with backoff under a deadline. A blocking
//     pg_advisory_lock waiter would be a transaction that CREATE INDEX CONCURRENTLY waits for,
//     while it waits for the lock the CIC session holds: a deadlock.
//
// The tables are compatible with golang-migrate's postgres drivers: schema_migrations(version,
// dirty) with one row, and a database migrated by either tool is read by both. The migration
// lock excludes every golang-migrate user: golang-migrate derives its advisory lock key from the
// schema, the table and a database name that depends on how its driver was made (see
// Driver.identify), so the driver holds both keys it can be (Lock).
package pgdriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemahook/schemahook/hook/source"
	"github.com/schemahook/schemahook/hook/sqlsplit"
)

// NilVersion is golang-migrate's "no version" (an empty or uninitialized database).
const NilVersion = database.NilVersion

var (
	// ErrMigrationFailed marks a migration whose SQL failed; see *MigrationError for where.
	ErrMigrationFailed = errors.New("migration failed")
	// ErrLockTimeout means a lock could not be taken before the deadline: the migration lock
	// (another schemahook is running) or a table lock (a long transaction holds it).
	ErrLockTimeout = errors.New("lock timeout")
	// ErrLeftDirty marks a failure that left the version row dirty (a *MigrationError with
	// Dirty set): whatever else went wrong, the state a human must look at comes first.
	ErrLeftDirty = errors.New("version left dirty")
)

// DefaultLockTimeout is the lock_timeout of each attempt unless Options say otherwise.
const DefaultLockTimeout = 200 * time.Millisecond

// Options tune the driver. The zero value of each field means the documented default.
type Options struct {
	MigrationsTable  string        // golang-migrate's version table; default "schema_migrations"
	HistoryTable     string        // per-migration history; default "schemahook_history"
	LockTimeout      time.Duration // SET LOCAL lock_timeout per attempt; default 200ms; <0 disables
	StatementTimeout time.Duration // SET LOCAL statement_timeout; 0 = server default
	LockWait         time.Duration // how long to poll for the migration lock; default 1m
	AppliedBy        string        // recorded in the history table
	Heartbeat        time.Duration // how often a long-running statement is reported; default 10s
	// CommitEach makes an upgrade commit each migration in its own transaction instead of the
	// pending ones all or nothing (see Upgrade): read by the runner, which picks Migrate or
	// Upgrade. Initial installs group either way; downgrades always commit step by step.
	CommitEach bool
}

func (o Options) withDefaults() Options {
	if o.MigrationsTable == "" {
		o.MigrationsTable = "schema_migrations"
	}
	if o.HistoryTable == "" {
		o.HistoryTable = "schemahook_history"
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.LockWait == 0 {
		o.LockWait = time.Minute
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	return o
}

// Driver implements golang-migrate's database.Driver on one pgx connection, which also holds
// the session-level migration lock. golang-migrate's interface has no context, so the driver
// carries the one it was created with: cancelling it (the overall deadline, SIGTERM) aborts
// the current statement and rolls back the current transaction.
type Driver struct {
	ctx     context.Context
	conn    *pgx.Conn
	opts    Options
	catalog *source.Catalog
	log     *slog.Logger

	versionTable string // sanitized identifiers
	historyTable string
	lockKeys     [2]int64 // golang-migrate's lock keys: library users' and the migrate CLI's (identify)
	identified   bool     // lockKeys are known (see identify)
	reconciler   reconciler
	tablesExist  bool // both tables existed when last looked at, or were never looked for (see State)
	lockDepth    int

	cur      int         // last version read or written
	pending  *step       // the migration between SetVersion(dirty) and SetVersion(clean)
	install  installMode // whether up steps join groups (Initialize, Upgrade)
	groupEnd int         // the version whose step sends the open group: the run's target
	initial  bool        // the grouping run is Initialize (for messages)
	group    *group      // the group that is not sent yet
}

// installMode says whether transactional up steps commit in groups (see Initialize, Upgrade).
type installMode int

const (
	installOff   installMode = iota
	installArmed             // Initialize started; its first step must start from no version
	installOn                // steps join groups (Initialize past its first step, Upgrade)
)

// step is one migration golang-migrate is running.
type step struct {
	from, to int
	mig      *source.Migration
	file     *source.File // what runs
	down     *source.File // the migration's down file, recorded in the history by an up step
	up       bool
	inTx     bool   // Run left a transaction open for SetVersion(clean) to commit
	deferred bool   // Run only checked the file: SetVersion(clean) sends it with the rows
	group    *group // the group the step commits with, if any
	retries  int
	blocked  *contention // what kept its last blocked attempt waiting, if seen
	lockCode string      // the SQLSTATE of its last lock timeout or deadlock
	started  time.Time
	waited   time.Duration // in a group: attempts of the group that failed in this step, and their backoff
	took     time.Duration // in a group: the step's time as recorded in its history row
	logged   bool          // its start is logged (announce)
}

// New returns a driver on conn for the migrations of catalog. It sends nothing: State reads
// the tables at once, and the first Lock learns the database and schema the lock key is
// derived from. A no-op update or a gate check is then one round trip after connecting.
func New(ctx context.Context, conn *pgx.Conn, catalog *source.Catalog, opts Options, log *slog.Logger) (*Driver, error) {
	opts = opts.withDefaults()
	return &Driver{
		ctx: ctx, conn: conn, opts: opts, catalog: catalog, log: log, cur: NilVersion,
		versionTable: pgx.Identifier{opts.MigrationsTable}.Sanitize(),
		historyTable: pgx.Identifier{opts.HistoryTable}.Sanitize(),
		// Migrators never drop the tables, so State reads them without asking first.
		tablesExist: true,
	}, nil
}

// noSchema is the error for a session whose search_path names no existing schema: the tables
// have nowhere to live.
func (d *Driver) noSchema() error {
	return fmt.Errorf("no schema is selected: search_path %q names no existing schema — create it or set search_path", d.conn.Config().RuntimeParams["search_path"])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func major(serverVersion string) int {
	n, _ := strconv.Atoi(strings.SplitN(serverVersion, ".", 2)[0])
	return n
}

// Open is required by golang-migrate's interface; schemahook builds drivers with New.
func (d *Driver) Open(string) (database.Driver, error) {
	return nil, errors.New("pgdriver: use pgdriver.New with a connection")
}

// Close does nothing: the connection belongs to the caller.
func (d *Driver) Close() error { return nil }

// Drop is refused: schemahook never drops a schema wholesale.
func (d *Driver) Drop() error {
	return errors.New("pgdriver: drop is not supported; revert with down migrations instead")
}

// Version returns golang-migrate's version row: NilVersion when the table or the row is missing.
func (d *Driver) Version() (int, bool, error) {
	st, err := d.State(VersionOnly)
	if err != nil {
		return 0, false, err
	}
	d.cur = st.Version
	return st.Version, st.Dirty, nil
}

// SetVersion is called by golang-migrate around every migration. With dirty=true it only
// records the step. With dirty=false it writes the version and history rows and commits: with
// the file in one query when Run deferred it, in the transaction Run left open otherwise; in a
// group, with the whole group at its last step. A failing file therefore
// fails here for most steps, with the same *MigrationError.
func (d *Driver) SetVersion(version int, dirty bool) error {
	if dirty {
		return d.begin(version)
	}
	p := d.pending
	d.pending = nil
	if p == nil {
		// Not around a migration: golang-migrate's Force. Write the row as told.
		if err := d.writeVersion(version, false); err != nil {
			return err
		}
		d.cur = version
		return nil
	}
	if err := d.finish(p); err != nil {
		return err
	}
	d.cur = version
	return nil
}

// begin records the step golang-migrate is about to run.
func (d *Driver) begin(to int) error {
	p := &step{from: d.cur, to: to, up: to > d.cur, started: time.Now()}
	v := to
	if !p.up {
		v = d.cur // a down step reverts the current version
	}
	if v < 0 || d.catalog.Lookup(uint(v)) == nil {
		return fmt.Errorf("migration %d is not in the migration source", v)
	}
	p.mig = d.catalog.Lookup(uint(v))
	down, err := p.mig.Down()
	if err != nil {
		return err
	}
	p.file, p.down = &p.mig.Up, down
	if !p.up {
		if down == nil {
			return fmt.Errorf("%s is irreversible: it has no down migration", p.mig.Up.Name)
		}
		p.file = down
	}
	if err := p.file.Runnable(); err != nil {
		// Callers check what they run before anything runs (source.Catalog.Runnable); this
		// only keeps a file that controls its own transaction from ever reaching the server.
		return fmt.Errorf("%w: %w", source.ErrInvalid, err)
	}
	if d.install == installArmed {
		if p.from != NilVersion || !p.up {
			return fmt.Errorf("pgdriver: Initialize on a database at version %d", p.from)
		}
		d.install = installOn
	}
	if d.install == installOn && !p.up {
		return fmt.Errorf("pgdriver: a down step (from version %d) in a run that groups up steps", p.from)
	}
	if d.install == installOn {
		if !d.joins(p) {
			// A no-transaction file runs outside any transaction, and a file that cannot go in
			// one query with its rows goes alone: what the group holds commits first.
			if err := d.flush(); err != nil {
				return err
			}
		} else {
			if d.group == nil {
				d.group = &group{from: p.from, initial: d.initial}
			}
			d.group.steps = append(d.group.steps, p)
			p.group = d.group
		}
	}
	d.pending = p
	return nil
}

// Run executes one migration file of the pending step, or, when the file can travel in one
// query with its rows (oneTrip), only checks it and leaves it to SetVersion(clean).
func (d *Driver) Run(r io.Reader) error {
	p := d.pending
	if p == nil {
		return errors.New("pgdriver: Run called outside a migration step")
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p.file.Name, err)
	}
	if string(body) != p.file.SQL {
		// golang-migrate and the catalog read the same files; a difference means the directory
		// changed while we ran. Refuse rather than record a checksum for other SQL.
		return fmt.Errorf("%s changed while schemahook was running; run the update again", p.file.Name)
	}
	if p.file.NoTransaction {
		return d.runStatements(p)
	}
	if p.group != nil || d.oneTrip(p.file.SQL) { // a group's steps passed oneTrip in begin
		p.deferred = true
		return nil
	}
	return d.runTransaction(p)
}

// runTransaction runs the whole file in one transaction, retrying lock timeouts. On success
// the transaction stays open for SetVersion(clean): the two-round-trip path, for the files
// oneTrip turns away.
//
// BEGIN and the SET LOCALs travel in the same simple-protocol query as the file: one round
// trip per attempt instead of two, the largest per-migration cost after the server's own work
// (docs/benchmarks.md). The server parses the whole string before running any of it, so a
// syntax error in the file runs nothing, as before; positions and statement counts are taken
// relative to the file by starting the query at offset -len(prelude).
func (d *Driver) runTransaction(p *step) error {
	prelude := "BEGIN; " + d.timeouts("SET LOCAL ", d.opts.LockTimeout) + d.stepMarkSQL(p, true) + "; "
	nPrelude := strings.Count(prelude, ";")
	query, off := prelude+p.file.SQL, -len(prelude)
	d.announce(p)
	retry := d.newLockRetry()
	retry.what = d.stepAttrs(p)
	defer retry.close()
	for {
		p.inTx = true
		var (
			completed int
			err       error
		)
		retry.watched(func() { completed, err = d.exec(query) })
		if err == nil {
			if d.conn.PgConn().TxStatus() != 'T' {
				p.inTx = false
				return d.endedItself(p, nil)
			}
			return nil
		}
		p.inTx = false
		if d.endedBefore(completed, err) {
			return d.endedItself(p, err)
		}
		// A parse error anywhere fails the string before BEGIN runs; count the file's statements
		// from its first one either way.
		completed = max(completed, nPrelude)
		if rbErr := d.rollback(); rbErr != nil {
			return errors.Join(d.failure(p, query, off, completed, err, false), rbErr)
		}
		if !retry.again(p, err) {
			return d.failure(p, query, off, completed, err, false)
		}
	}
}

// endedBefore reports whether the query that failed with err had ended the step's transaction
// before failing: BEGIN ran (a parse error runs nothing), yet no transaction is open, so the
// failing statement ran after a COMMIT or ROLLBACK of the file's own.
func (d *Driver) endedBefore(completed int, err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && completed > 0 && d.conn.PgConn().TxStatus() == 'I'
}

// endedItself reports a file that ended the step's transaction itself (COMMIT or ROLLBACK in
// it), possibly failing afterwards (after): what it did before is committed without a version
// row, so the version is marked dirty. The catalog refuses top-level transaction control in
// transactional files, and a COMMIT in a procedure or DO block fails inside the transaction
// block schemahook opens (SQLSTATE 2D000), so this is a safety net for what the lexer could
// miss: it reports the truth, a dirty version (ErrLeftDirty).
func (d *Driver) endedItself(p *step, after error) error {
	msg := "the file ended the transaction itself (COMMIT or ROLLBACK)"
	if after != nil {
		msg += " and then failed (" + after.Error() + ")"
	}
	return errors.Join(&MigrationError{Step: p, File: p.file.Name, Dirty: true,
		Err: errors.New(msg)},
		d.writeVersion(p.to, true))
}

// runStatements runs a no-transaction file statement by statement. The version is marked
// dirty first, so that a crash in the middle is visible. A failure before any statement may
// have changed something — the first statement failing, unless it is a CONCURRENTLY one (which
// can leave an invalid index), or setting its timeouts — restores the previous clean version;
// any later failure leaves the version dirty and says so (ErrLeftDirty).
func (d *Driver) runStatements(p *step) error {
	if err := d.writeVersion(p.to, true); err != nil {
		return err
	}
	d.announce(p)
	retry := d.newLockRetry()
	retry.what = d.stepAttrs(p)
	defer retry.close()
	current := time.Duration(-1)
	// fail reports err, raised by sql at offset off of the file; ran says whether a statement
	// of the file may have changed something.
	fail := func(sql string, off int, err error, ran bool) error {
		if !ran {
			if werr := d.writeVersion(p.from, false); werr != nil {
				return errors.Join(d.failure(p, sql, off, 0, err, true), werr)
			}
		}
		return d.failure(p, sql, off, 0, err, ran)
	}
	i := 0
	for st := range sqlsplit.Statements(p.file.SQL) {
		// CONCURRENTLY operations take locks that do not block readers or writers, and a lock
		// timeout in their later phases would leave an invalid index: let them wait.
		want := d.opts.LockTimeout
		if concurrently(st.SQL) {
			want = -1
		}
		if want != current {
			set := d.timeouts("SET ", want)
			if i == 0 {
				set += d.stepMarkSQL(p, false)
			}
			if _, err := d.conn.Exec(d.ctx, set); err != nil {
				return fail(st.SQL, st.Offset, fmt.Errorf("setting timeouts before the statement: %w", err), i > 0)
			}
			current = want
		}
		for {
			var err error
			retry.watched(func() { _, err = d.exec(st.SQL) })
			if err == nil {
				break
			}
			if retry.again(p, err, "line", st.Line) {
				continue
			}
			return fail(st.SQL, st.Offset, err, i > 0 || concurrently(st.SQL))
		}
		i++
	}
	if _, err := d.conn.Exec(d.ctx, "RESET lock_timeout; RESET statement_timeout; RESET application_name"); err != nil {
		e := d.failure(p, "", len(p.file.SQL), 0, fmt.Errorf("resetting timeouts: %w", err), true)
		e.note = "every statement of the file ran, but its version was not recorded"
		return e
	}
	return nil
}

// finish writes the version and history rows of a successful step and commits its transaction.
// A deferred step's file runs here too, in the same query (runDeferred), unless its rows cannot
// be written as literals or the file's last statement is unfinished: then it takes the
// two-round-trip path after all, which reports such a file's error as before.
//
// A step of a group waits for the group's last step, which sends them all: the run's target,
// or the step before one that cannot join (begin sends the group then).
func (d *Driver) finish(p *step) error {
	if p.group != nil {
		if p.to < d.groupEnd {
			return nil
		}
		return d.flush()
	}
	if p.deferred {
		if done, err := d.runDeferred(&group{from: p.from, steps: []*step{p}}); done {
			return err
		}
		if err := d.runTransaction(p); err != nil {
			return err
		}
	}
	batch := &pgx.Batch{}
	for _, s := range d.records(p, &values{}, time.Since(p.started), false) {
		batch.Queue(s.sql, s.args...)
	}
	if p.inTx {
		batch.Queue("COMMIT")
	}
	if err := d.conn.SendBatch(d.ctx, batch).Close(); err != nil {
		err = fmt.Errorf("recording version %d: %w", p.to, err)
		if p.inTx {
			return errors.Join(err, d.rollback())
		}
		// A no-transaction step: runStatements marked the version dirty and every statement ran.
		e := d.failure(p, "", len(p.file.SQL), 0, err, true)
		e.note = "every statement of the file ran, but recording its version failed (if the server committed the record before the connection failed, the database is at version " +
			strconv.Itoa(p.to) + ", clean: `schemahook status` shows which)"
		return e
	}
	d.logDone(p)
	return nil
}

// logDone logs a step whose rows are committed. A group's steps report the time their history
// rows recorded: their own share of the group's query.
func (d *Driver) logDone(p *step) {
	took := time.Since(p.started)
	if p.group != nil {
		took = p.took
	}
	d.log.Info(map[bool]string{true: "applied migration", false: "reverted migration"}[p.up],
		"version", p.mig.Version, "name", p.mig.Name, "duration", took.Round(time.Microsecond).String(),
		"transaction", !p.file.NoTransaction, "retries", p.retries)
}

// markSQL sets where the time of a group's next step starts: the server's clock now, as epoch
// seconds (a timestamp's text would depend on DateStyle), in a setting that lasts until the
// transaction ends.
const markSQL = "set_config('schemahook.mark', extract(epoch FROM clock_timestamp())::text, true)"

// exec sends sql as one simple-protocol query (a file may hold many statements). On failure
// it returns how many statements completed first: PostgreSQL reports no position for many
// errors (e.g. ALTER TABLE on a missing relation), and the count tells which statement failed.
func (d *Driver) exec(sql string) (completed int, err error) {
	if strings.TrimSpace(sql) == "" {
		return 0, nil
	}
	results, err := d.conn.PgConn().Exec(d.ctx, sql).ReadAll()
	for _, r := range results {
		if r.Err == nil {
			completed++
		}
	}
	return completed, err
}

func (d *Driver) rollback() error {
	if d.conn.PgConn().TxStatus() == 'I' {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), 5*time.Second)
	defer cancel()
	if _, err := d.conn.Exec(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("rolling back: %w", err)
	}
	return nil
}

// timeouts renders the SET statements for one attempt; lockTimeout < 0 means none.
func (d *Driver) timeouts(set string, lockTimeout time.Duration) string {
	lt := "0"
	if lockTimeout > 0 {
		lt = strconv.FormatInt(lockTimeout.Milliseconds(), 10)
	}
	s := set + "lock_timeout = " + lt + "; "
	if d.opts.StatementTimeout > 0 {
		s += set + "statement_timeout = " + strconv.FormatInt(d.opts.StatementTimeout.Milliseconds(), 10) + "; "
	}
	return s
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.LockNotAvailable || pgErr.Code == pgerrcode.DeadlockDetected)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func concurrently(stmt string) bool {
	fields := strings.Fields(strings.ToUpper(stmt[sqlsplit.SkipBlanks(stmt, 0):]))
	for i, f := range fields {
		if i > 6 {
			break
		}
		if f == "CONCURRENTLY" {
			return true
		}
	}
	return false
}
