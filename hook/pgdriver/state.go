package pgdriver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemahook/schemahook/hook/sqlsplit"
)

// Applied is one row of the history table: a migration that is applied now.
type Applied struct {
	Version           uint      `json:"version"`
	Name              string    `json:"name"`
	Checksum          string    `json:"checksum"`
	DownSQL           *string   `json:"-"`
	DownNoTransaction bool      `json:"-"`
	Irreversible      bool      `json:"irreversible"`
	AppliedAt         time.Time `json:"applied_at"`
	DurationMS        float64   `json:"duration_ms"`
	AppliedBy         string    `json:"applied_by"`
	Retries           int       `json:"retries"`
}

// State is what the database says about its schema version.
type State struct {
	Initialized bool      // the version table exists
	HasHistory  bool      // the history table exists
	Version     int       // NilVersion when nothing is applied
	Dirty       bool      // a no-transaction migration stopped midway, or a migration is running (see runner)
	History     []Applied // ascending by version, none above Version; empty for a database adopted from golang-migrate
	// Reverted are history rows above Version: migrations that were reverted without the
	// history knowing — by golang-migrate (`migrate down`, `goto`, `force`) before the version
	// table had its forget-reverted trigger (EnsureReconciler), or with it and a step that
	// failed. They are not applied, whatever the row says; ForgetReverted removes them.
	Reverted []Applied
}

// Detail says how much of the history table State reads.
type Detail int

const (
	// VersionOnly reads the version row alone: the gate's question.
	VersionOnly Detail = iota
	// Checksums adds each applied migration's version, name and checksum: what the drift check
	// before every update needs, and all a no-op update reads.
	Checksums
	// FullHistory adds the stored down SQL, timings and who applied each migration.
	FullHistory
)

// State reads the version row and, as detail asks, the history table. It never creates or
// locks anything, so `check` and `status` can run against a database they may not write to.
//
// Every deploy and sync runs it, so it costs one round trip when the tables exist, which it
// assumes until it learns otherwise: migrators never drop them. When one is missing (a new
// database, a golang-migrate-only one, or someone dropped it) the read fails with SQLSTATE
// 42P01 and State asks the catalog which tables exist, as it does from then on in this session
// (another run may create them meanwhile).
func (d *Driver) State(detail Detail) (State, error) {
	if st, ok, err := d.StateIfInitialized(detail); ok || err != nil {
		return st, err
	}
	st := State{Version: NilVersion}
	var schema bool
	err := d.conn.QueryRow(d.ctx, "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, current_schema() IS NOT NULL",
		d.versionTable, d.historyTable).Scan(&st.Initialized, &st.HasHistory, &schema)
	if err != nil {
		return st, fmt.Errorf("reading the schema version: %w", err)
	}
	if !schema {
		return st, d.noSchema()
	}
	if !st.Initialized {
		return st, nil
	}
	d.tablesExist = st.HasHistory
	return d.readState(st, detail)
}

// StateIfInitialized is State for a caller that only wants a database with both tables: ok is
// false, after one round trip at most, when one is missing or was found missing before.
func (d *Driver) StateIfInitialized(detail Detail) (st State, ok bool, err error) {
	if !d.tablesExist {
		return st, false, nil
	}
	st, err = d.readState(State{Initialized: true, HasHistory: true}, detail)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable {
		d.tablesExist = false
		return State{Version: NilVersion}, false, nil
	}
	return st, err == nil, err
}

// readState reads the version row and the history, in one round trip, into st, whose
// Initialized and HasHistory say which tables exist. History rows above the version go to
// st.Reverted.
func (d *Driver) readState(st State, detail Detail) (st2 State, err error) {
	defer func() {
		if err == nil {
			st2.History, st2.Reverted = splitReverted(st2.History, st2.Version)
		}
	}()
	st.Version = NilVersion
	versionSQL := "SELECT version, dirty FROM " + d.versionTable + " LIMIT 1"
	historySQL := "SELECT version, name, checksum FROM " + d.historyTable
	if detail == FullHistory {
		// Timestamps come in binary: their text form depends on the session's DateStyle.
		historySQL = "SELECT version, name, checksum, down_sql, down_no_transaction, irreversible, applied_at, duration_ms, applied_by, retries FROM " + d.historyTable
		batch := &pgx.Batch{}
		batch.Queue(versionSQL).Query(func(rows pgx.Rows) error { return d.scanVersion(rows, &st) })
		if st.HasHistory {
			batch.Queue(historySQL).Query(func(rows pgx.Rows) error { return d.scanHistory(rows, detail, &st.History) })
		}
		return st, d.conn.SendBatch(d.ctx, batch).Close()
	}
	// Every deploy and sync sends this on a fresh backend, where one simple-protocol query costs
	// the server about a millisecond less than the extended protocol's parse, bind and describe
	// of each statement. The columns are bigint, boolean and text: their text form does not
	// depend on any session setting.
	sql := versionSQL
	if detail == Checksums && st.HasHistory {
		sql += ";\n" + historySQL
	}
	mrr := d.conn.PgConn().Exec(d.ctx, sql)
	for i := 0; mrr.NextResult(); i++ {
		rows := pgx.RowsFromResultReader(d.conn.TypeMap(), mrr.ResultReader())
		if i == 0 {
			err = errors.Join(err, d.scanVersion(rows, &st))
		} else {
			err = errors.Join(err, d.scanHistory(rows, detail, &st.History))
		}
	}
	if cerr := mrr.Close(); cerr != nil {
		return st, cerr // the server's error (SQLSTATE 42P01 for a missing table) comes first
	}
	return st, err
}

// splitReverted splits history rows, ascending by version, at version: those above it were
// reverted (State.Reverted). No rows are copied.
func splitReverted(h []Applied, version int) (applied, reverted []Applied) {
	i := len(h)
	for i > 0 && int64(h[i-1].Version) > int64(version) {
		i--
	}
	if i == len(h) {
		return h, nil
	}
	return h[:i:i], h[i:]
}

// ForgetReverted deletes the history rows above version, which State reports as Reverted: the
// history then says what the version row says. Call it under the migration lock, with the
// version clean (a dirty version does not say whether its step was an up or a down).
func (d *Driver) ForgetReverted(version int) error {
	if _, err := d.conn.Exec(d.ctx, "DELETE FROM "+d.historyTable+" WHERE version > $1", int64(version)); err != nil {
		return fmt.Errorf("removing the history of reverted migrations above version %d: %w", version, err)
	}
	return nil
}

// scanVersion reads golang-migrate's version row into st; no row means NilVersion.
func (d *Driver) scanVersion(rows pgx.Rows, st *State) error {
	defer rows.Close()
	if rows.Next() {
		var v int64
		if err := rows.Scan(&v, &st.Dirty); err != nil {
			return fmt.Errorf("reading %s: %w", d.opts.MigrationsTable, err)
		}
		st.Version = int(v)
	}
	rows.Close()
	return rows.Err()
}

// scanHistory reads history rows of the columns detail asks for into out, by version.
func (d *Driver) scanHistory(rows pgx.Rows, detail Detail, out *[]Applied) error {
	// Sized for the catalog (the usual row count) rather than grown by doubling: on a no-op,
	// every page of fresh memory is a page fault.
	var hint int
	if d.catalog != nil {
		hint = len(d.catalog.Migrations())
	}
	var err error
	*out, err = pgx.AppendRows(make([]Applied, 0, hint), rows, func(r pgx.CollectableRow) (Applied, error) {
		var a Applied
		var v int64
		dest := []any{&v, &a.Name, &a.Checksum}
		if detail == FullHistory {
			dest = append(dest, &a.DownSQL, &a.DownNoTransaction, &a.Irreversible, &a.AppliedAt, &a.DurationMS, &a.AppliedBy, &a.Retries)
		}
		err := r.Scan(dest...)
		a.Version = uint(v)
		return a, err
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", d.opts.HistoryTable, err)
	}
	// Sorted here rather than by the server: ORDER BY costs a fresh backend (every run has one)
	// more planning than sorting a few hundred rows in Go.
	slices.SortFunc(*out, func(a, b Applied) int { return cmp.Compare(a.Version, b.Version) })
	return nil
}

// EnsureTables creates the version and history tables when missing. Call it under the
// migration lock: concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type.
func (d *Driver) EnsureTables() error {
	_, err := d.conn.Exec(d.ctx, `CREATE TABLE IF NOT EXISTS `+d.versionTable+` (
		version bigint NOT NULL PRIMARY KEY,
		dirty boolean NOT NULL
	);
	CREATE TABLE IF NOT EXISTS `+d.historyTable+` (
		version bigint PRIMARY KEY,
		name text NOT NULL,
		checksum text NOT NULL,
		down_sql text,
		down_no_transaction boolean NOT NULL DEFAULT false,
		irreversible boolean NOT NULL DEFAULT false,
		applied_at timestamptz NOT NULL DEFAULT now(),
		duration_ms double precision NOT NULL DEFAULT 0,
		applied_by text NOT NULL DEFAULT '',
		retries integer NOT NULL DEFAULT 0
	);
	COMMENT ON TABLE `+d.historyTable+` IS 'schemahook: one row per applied migration; down_sql lets an older release revert it'`)
	if err != nil {
		return fmt.Errorf("creating %s and %s: %w", d.opts.MigrationsTable, d.opts.HistoryTable, err)
	}
	d.tablesExist = true
	return nil
}

// Adopt records history rows for migrations that were applied by another tool (golang-migrate)
// up to version, taking today's files as what was applied. It writes nothing for versions
// already in the history.
func (d *Driver) Adopt(version int) error {
	if err := d.catalog.ReadDowns(); err != nil {
		return err
	}
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	d.queueAdopt(batch, version, "adopted by "+d.opts.AppliedBy)
	batch.Queue("COMMIT")
	if err := d.conn.SendBatch(d.ctx, batch).Close(); err != nil {
		return errors.Join(fmt.Errorf("recording adopted history: %w", err), d.rollback())
	}
	return nil
}

// Force sets the version row to version, clean, drops history rows above it and records
// missing ones up to it from the files, in one transaction.
func (d *Driver) Force(version int) error {
	if err := d.catalog.ReadDowns(); err != nil {
		return err
	}
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	d.queueVersion(batch, version, false)
	batch.Queue("DELETE FROM "+d.historyTable+" WHERE version > $1", int64(version))
	d.queueAdopt(batch, version, "forced by "+d.opts.AppliedBy)
	batch.Queue("COMMIT")
	if err := d.conn.SendBatch(d.ctx, batch).Close(); err != nil {
		return errors.Join(fmt.Errorf("forcing version %d: %w", version, err), d.rollback())
	}
	d.cur = version
	return nil
}

func (d *Driver) queueAdopt(batch *pgx.Batch, version int, by string) {
	for _, m := range d.catalog.Migrations() {
		if int(m.Version) > version {
			break
		}
		var down *string
		downNoTx := false
		if f, _ := m.Down(); f != nil { // read by Adopt and Force before queueing
			down, downNoTx = &f.SQL, f.NoTransaction
		}
		batch.Queue(`INSERT INTO `+d.historyTable+` (version, name, checksum, down_sql, down_no_transaction, irreversible, applied_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (version) DO NOTHING`,
			int64(m.Version), m.Name, m.Checksum, down, downNoTx, m.Irreversible, by)
	}
}

// MigrationError says which file failed, where, and in what state the database was left.
type MigrationError struct {
	Step     *step
	File     string
	Line     int // 1-based; 0 when unknown
	Column   int
	Dirty    bool // the version is left dirty (no-transaction file, partially applied)
	Unknown  bool // the connection failed after the file and its COMMIT were sent
	Retries  int
	Deadline bool // the run's deadline passed: lock retries ran out of time, or a statement was cancelled
	// Interrupted: the run was cancelled (SIGINT, SIGTERM) and the server cancelled the
	// statement: the transaction was rolled back.
	Interrupted bool
	Err         error

	group *group // the group the file ran in: none of it was applied
	note  string // what the error's position means, when the server's message alone misleads

	blocked     *contention   // what kept the last blocked attempt waiting
	lockCode    string        // the SQLSTATE of the last lock timeout or deadlock
	lockTimeout time.Duration // each attempt's lock_timeout
	cause       error         // why the run was cancelled (context.Cause)
}

func (e *MigrationError) Error() string {
	if s, ok := e.stopped(); ok {
		return s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "migration %s failed", e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, " at line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		fmt.Fprintf(&b, " (SQLSTATE %s): %s", pgErr.Code, pgErr.Message)
		if pgErr.Detail != "" {
			fmt.Fprintf(&b, "; detail: %s", pgErr.Detail)
		}
		if pgErr.Hint != "" {
			fmt.Fprintf(&b, "; hint: %s", pgErr.Hint)
		}
		if pgErr.Where != "" {
			fmt.Fprintf(&b, "; where: %s", strings.ReplaceAll(pgErr.Where, "\n", " / "))
		}
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.note != "" {
		fmt.Fprintf(&b, "; %s", e.note)
	}
	if e.Deadline {
		fmt.Fprintf(&b, " after %d lock-timeout retries: a long transaction keeps a conflicting lock — find it in pg_stat_activity, then retry or raise --timeout", e.Retries)
	}
	from, to := NilVersion, 0
	if e.Step != nil {
		from, to = e.Step.from, e.Step.to
	}
	prev := versionName(from)
	switch {
	case e.Unknown && e.group != nil:
		fmt.Fprintf(&b, " — the connection failed while the server ran %s (one transaction) and their COMMIT, so whether they were applied is not known: "+
			"the database is at %s or at version %d, clean either way; `schemahook status` shows which, and running the update again continues from there",
			e.group.span(), versionName(e.group.from), e.group.steps[len(e.group.steps)-1].to)
	case e.group != nil:
		fmt.Fprintf(&b, " — %s", e.group.rolledBack())
	case e.Unknown:
		fmt.Fprintf(&b, " — the connection failed while the server ran the file and its COMMIT, so whether it was applied is not known: "+
			"the database is at %s or at version %d, clean either way; `schemahook status` shows which, and running the update again continues from there", prev, to)
	case !e.Dirty:
		fmt.Fprintf(&b, " — the database is still at %s, clean; fix the cause and run the update again", prev)
	case e.Step != nil && !e.Step.file.NoTransaction:
		// Only a file that ended schemahook's transaction itself gets here (endedItself); the
		// catalog refuses the transaction control statements it can see.
		fmt.Fprintf(&b, " — the database is now DIRTY at version %d: the file ended the transaction schemahook wraps it in, so what ran before that was committed without its version row. "+
			"Remove the transaction control from the file (or mark it -- schemahook:no-transaction), finish or undo its changes by hand, "+
			"then run `schemahook force %d` if they are complete, or `schemahook force %s` if they are undone, and run the update again",
			to, to, forceTarget(e.Step))
	default:
		fmt.Fprintf(&b, " — the database is now DIRTY at version %d: this file runs without a transaction and the statements before the failing one were kept. "+
			"Finish or undo them by hand (a failed CREATE INDEX CONCURRENTLY leaves an INVALID index: DROP INDEX CONCURRENTLY it), "+
			"then run `schemahook force %d` if the migration's changes are now complete, or `schemahook force %s` if they are undone, and run the update again",
			to, to, forceTarget(e.Step))
	}
	return b.String()
}

// versionName names a version in messages.
func versionName(v int) string {
	if v < 0 {
		return "no version (empty)"
	}
	return fmt.Sprintf("version %d", v)
}

func forceTarget(p *step) string {
	if p == nil || p.from < 0 {
		return "-1"
	}
	return fmt.Sprint(p.from)
}

// Unwrap exposes the sentinels (ErrMigrationFailed or ErrLockTimeout, and ErrLeftDirty when
// the version is left dirty) and the driver error.
func (e *MigrationError) Unwrap() []error {
	out := []error{ErrMigrationFailed, e.Err}
	if e.Deadline && (e.Retries > 0 || retryable(e.Err)) {
		out[0] = ErrLockTimeout
	}
	if e.Dirty {
		out = append(out, ErrLeftDirty)
	}
	return out
}

// failure builds the MigrationError for err raised by sql, which starts at byte offset off of
// the file, after completed statements of sql succeeded. PostgreSQL reports positions in
// characters of the query it received; without one, the failing statement's line is used.
func (d *Driver) failure(p *step, sql string, off, completed int, err error, dirty bool) *MigrationError {
	e := &MigrationError{Step: p, File: p.file.Name, Dirty: dirty, Retries: p.retries, Err: err,
		blocked: p.blocked, lockCode: p.lockCode, lockTimeout: d.opts.LockTimeout}
	switch cerr := d.ctx.Err(); {
	case errors.Is(cerr, context.DeadlineExceeded):
		e.Deadline = true
	case cerr != nil:
		e.Interrupted, e.cause = true, context.Cause(d.ctx)
	default:
		// A retryable error reaching here means the retries ran out of time (the backoff
		// stops at the deadline a moment before the context says so).
		e.Deadline = retryable(err)
	}
	if cerr := d.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		e.Err = fmt.Errorf("%w (interrupted: %w)", err, cerr)
	}
	var pgErr *pgconn.PgError
	switch stmts := sqlsplit.Split(sql); {
	case errors.As(err, &pgErr) && pgErr.Position > 0:
		e.Line, e.Column = position(p.file.SQL, off, sql, int(pgErr.Position))
	case pgErr != nil && completed < len(stmts):
		e.Line = 1 + strings.Count(p.file.SQL[:max(off+stmts[completed].Offset, 0)], "\n")
	}
	return e
}

// position converts a 1-based character position within stmt (which starts at byte off of
// file, negative when stmt has a prefix) into a 1-based line and column of file.
func position(file string, off int, stmt string, pos int) (int, int) {
	b := byteOffset(stmt, pos)
	// off is negative when stmt starts with text that is not in the file (the transaction
	// prelude): a position inside that text maps to the file's start.
	abs := min(max(off+b, 0), len(file))
	before := file[:abs]
	line := 1 + strings.Count(before, "\n")
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

// byteOffset converts PostgreSQL's 1-based character position within s into a byte offset.
func byteOffset(s string, pos int) int {
	b := 0
	for i := 1; i < pos && b < len(s); i++ {
		_, n := utf8.DecodeRuneInString(s[b:])
		b += n
	}
	return b
}
