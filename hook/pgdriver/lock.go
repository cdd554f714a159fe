package pgdriver

// The migration lock: golang-migrate's advisory lock keys, taken together, and who holds them.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/backoff"
)

// identify derives the migration lock keys from the current database and schema, once per
// session, before the first lock is taken.
//
// golang-migrate's key is GenerateAdvisoryLockId(database name, schema, table), and the database
// name is whatever its driver's Config says: WithInstance with an empty DatabaseName (library
// users, and schemahook's own driver before it held two keys) fills in current_database(),
// while a driver opened from a URL — the migrate CLI, and every program that calls migrate.New —
// passes the URL's path with its leading slash, "/dbname" (database/pgx/v5 and
// database/postgres, Open). Both keys are held, so schemahook excludes either kind of user and
// each kind still excludes the other schemahook. (A URL that names its database only in a
// query parameter or PGDATABASE has an empty path and gets current_database() too.)
func (d *Driver) identify() error {
	if d.identified {
		return nil
	}
	// An orphaned backend (the hook pod was killed mid-statement) would keep the migration lock
	// until its statement ends; PostgreSQL 14+ can notice the dead client and abort early. The
	// setting rides on this query, which every session that changes anything sends first, and
	// so does the question whether the version table has its forget-reverted trigger.
	check := "''"
	if major(d.conn.PgConn().ParameterStatus("server_version")) >= 14 {
		check = "set_config('client_connection_check_interval', '1s', false)"
	}
	var (
		dbName, schema, ignored      string
		versionSchema, historySchema *string
	)
	const schemaOf = `(SELECT quote_ident(n.nspname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(`
	err := d.conn.QueryRow(d.ctx, "SELECT current_database(), coalesce(current_schema(), ''), "+check+
		", EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2), "+
		schemaOf+"$1)), "+schemaOf+"$3))",
		d.versionTable, d.reconcilerName(), d.historyTable).Scan(&dbName, &schema, &ignored, &d.reconciler.exists, &versionSchema, &historySchema)
	if err != nil {
		return fmt.Errorf("reading the current database: %w", err)
	}
	if schema == "" {
		return d.noSchema()
	}
	// Where the tables are, or will be: EnsureTables creates them in the current schema.
	current := pgx.Identifier{schema}.Sanitize()
	d.reconciler.schema = cmp.Or(deref(versionSchema), current)
	d.reconciler.versionQ = d.reconciler.schema + "." + d.versionTable
	d.reconciler.historyQ = cmp.Or(deref(historySchema), current) + "." + d.historyTable
	for i, name := range []string{dbName, "/" + dbName} {
		key, err := database.GenerateAdvisoryLockId(name, schema, d.opts.MigrationsTable)
		if err != nil {
			return fmt.Errorf("computing the migration lock key: %w", err)
		}
		if d.lockKeys[i], err = strconv.ParseInt(key, 10, 64); err != nil {
			return fmt.Errorf("computing the migration lock key: %w", err)
		}
	}
	d.identified = true
	return nil
}

// Lock takes the session-level migration lock, polling with backoff for up to Options.LockWait.
// It is reentrant, so the runner can validate under the lock and then let golang-migrate take
// it again.
//
// The lock is both of golang-migrate's keys (identify), taken in one statement that takes both or
// neither: the second is tried only once the first is held, and released at once when the second
// is not to be had. The session therefore never holds one key while it waits for the other —
// another golang-migrate user may hold that one and wait, with a blocking pg_advisory_lock, for
// ours — and never waits on the server at all (see the package comment).
func (d *Driver) Lock() error {
	if d.lockDepth > 0 {
		d.lockDepth++
		return nil
	}
	if err := d.identify(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.opts.LockWait)
	defer cancel()
	policy := backoff.Policy{Initial: 25 * time.Millisecond, Max: time.Second}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		var ok bool
		// CASE evaluates its branches in order and only the one it needs; the functions are
		// volatile, so the planner evaluates none of them ahead.
		const both = `SELECT CASE WHEN pg_try_advisory_lock($1) THEN
			CASE WHEN pg_try_advisory_lock($2) THEN true ELSE NOT pg_advisory_unlock($1) END
		ELSE false END`
		if err := d.conn.QueryRow(d.ctx, both, d.lockKeys[0], d.lockKeys[1]).Scan(&ok); err != nil {
			return fmt.Errorf("taking the migration lock: %w", err)
		}
		if ok {
			d.lockDepth = 1
			if attempt > 0 {
				d.log.Info("took the migration lock", "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		if attempt == 0 {
			d.log.Info("waiting for the migration lock", "holder", d.holderText(), "wait", d.opts.LockWait.String())
		}
		if err := policy.Sleep(ctx, attempt); err != nil {
			if d.ctx.Err() != nil {
				return fmt.Errorf("waiting for the migration lock: %w", d.ctx.Err())
			}
			return fmt.Errorf("%w: a migration is in progress: the migration lock is held by %s and was not released within %s — wait for it to finish, or raise --lock-wait",
				ErrLockTimeout, d.holderText(), d.opts.LockWait)
		}
	}
}

// Holder is a session holding the migration lock (either of its keys), for messages.
type Holder struct {
	PID         int
	Application string     // application_name (without a running step's mark); empty when the client set none
	Client      string     // client address, or "local socket"; empty when not visible to this role
	State       string     // pg_stat_activity.state; empty when not visible to this role
	Since       *time.Time // when its connection started; nil when not visible to this role
	Key         string     // which of golang-migrate's keys it holds, and so what it likely is
	Role        string     // the role it connected as (visible to every role)
	Step        *Step      // the migration it is running, from its application_name; nil between steps or for other tools
}

func (h *Holder) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", h.PID)
	if h.Role != "" {
		fmt.Fprintf(&b, ", role %q", h.Role)
	}
	if h.Application != "" {
		fmt.Fprintf(&b, ", application %q", h.Application)
	} else {
		b.WriteString(", no application name")
	}
	if h.Client != "" {
		fmt.Fprintf(&b, " from %s", h.Client)
	}
	if h.State != "" {
		fmt.Fprintf(&b, ", %s", h.State)
	}
	if h.Since != nil {
		fmt.Fprintf(&b, ", connected since %s (%s ago)", h.Since.UTC().Format("2006-01-02 15:04:05 UTC"), time.Since(*h.Since).Round(time.Second))
	}
	fmt.Fprintf(&b, ", holding %s", h.Key)
	if h.Step != nil {
		b.WriteString(", " + h.Step.String())
	}
	return b.String()
}

// LockHolder returns another session holding the migration lock — either key: schemahook holds
// both, the migrate CLI one, a golang-migrate library user the other — or nil when none does.
// pg_locks is readable by every role; what pg_stat_activity shows of another role's session
// may be limited to its pid and application name.
func (d *Driver) LockHolder() (*Holder, error) {
	if err := d.identify(); err != nil {
		return nil, err
	}
	const q = `SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), CASE WHEN a.backend_start IS NOT NULL THEN 'local socket' ELSE '' END),
		coalesce(a.state, ''), a.backend_start, bool_or(k.i = 0), bool_or(k.i = 1), coalesce(a.usename::text, '')
	FROM pg_locks l
	JOIN (VALUES (0, $1::bigint), (1, $2::bigint)) AS k (i, key)
	  ON l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid AND l.objsubid = 1
	LEFT JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	GROUP BY 1, 2, 3, 4, 5, 8
	ORDER BY count(*) DESC, a.backend_start NULLS LAST
	LIMIT 1`
	var (
		h                Holder
		library, fromURL bool
	)
	err := d.conn.QueryRow(d.ctx, q, d.lockKeys[0], d.lockKeys[1]).Scan(&h.PID, &h.Application, &h.Client, &h.State, &h.Since, &library, &fromURL, &h.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading who holds the migration lock: %w", err)
	}
	if name, st, ok := parseStepMark(h.Application); ok {
		h.Application, h.Step = name, &st
	}
	switch {
	case library && fromURL:
		h.Key = "both keys (schemahook)"
	case fromURL:
		h.Key = "the key of golang-migrate opened from a URL (the migrate CLI)"
	default:
		h.Key = "the key of golang-migrate's WithInstance (a library user, or an older schemahook)"
	}
	return &h, nil
}

// holderText describes the lock's holder for a message.
func (d *Driver) holderText() string {
	h, err := d.LockHolder()
	if err != nil || h == nil {
		return "a session that could not be identified"
	}
	return h.String()
}

// Unlock releases one level of the migration lock; the last level releases both keys. A
// transaction left open by a failed step is rolled back first, and a group golang-migrate
// stopped before its end (a step failed before the group was sent) is dropped unsent.
func (d *Driver) Unlock() error {
	if d.lockDepth == 0 {
		return nil
	}
	d.lockDepth--
	if d.lockDepth > 0 {
		return nil
	}
	var errs []error
	if d.pending != nil && d.pending.inTx {
		errs = append(errs, d.rollback())
	}
	d.pending, d.group = nil, nil
	// The lock must be released even when d.ctx was cancelled (SIGTERM): use a fresh context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), 5*time.Second)
	defer cancel()
	unlock := fmt.Sprintf("SELECT pg_advisory_unlock(%d), pg_advisory_unlock(%d)", d.lockKeys[0], d.lockKeys[1])
	if len(errs) == 0 && d.reconciler.wanted && !d.reconciler.exists && d.ctx.Err() == nil {
		// The trigger is created in the query that releases the lock (EnsureReconciler).
		if done := d.createReconciler(ctx, unlock); done {
			return nil
		}
	}
	if _, err := d.conn.Exec(ctx, unlock); err != nil {
		errs = append(errs, fmt.Errorf("releasing the migration lock: %w", err))
	}
	return errors.Join(errs...)
}
