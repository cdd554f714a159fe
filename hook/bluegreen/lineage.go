package bluegreen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The lineage lives in a database of its own (not in the base or a copy) because
// CREATE DATABASE … TEMPLATE needs the source to have no session at all: a table in the source
// would make every reader of it, the gate included, block the copy. Its rows are names, versions
// and counters, nothing secret: PUBLIC may read them, so the gate's read-only role can.
const lineageDDL = `
CREATE TABLE IF NOT EXISTS schemahook_copies (
    name          text PRIMARY KEY,
    version       bigint NOT NULL,
    source        text,
    state         text NOT NULL,
    serving       boolean NOT NULL DEFAULT false,
    frozen        boolean NOT NULL DEFAULT false,
    copy_point    timestamptz,
    source_writes jsonb,
    switch_writes jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    serving_since timestamptz
);
GRANT SELECT ON schemahook_copies TO PUBLIC;
`

// Row states: a copy being made (left behind by a crash, dropped by the next run) or usable.
const (
	stateCopying = "copying"
	stateReady   = "ready"
)

// Row is one database of the lineage.
type Row struct {
	Name         string     `json:"name"`
	Version      int        `json:"version"`          // schema version; -1 unknown or empty
	Source       string     `json:"source,omitempty"` // the database it was copied from ("" for the base)
	State        string     `json:"state"`
	Serving      bool       `json:"serving"` // the database the release uses now
	Frozen       bool       `json:"frozen"`  // default_transaction_read_only set by schemahook
	CopyPoint    *time.Time `json:"copyPoint,omitempty"`
	SourceWrites *Counters  `json:"sourceWrites,omitempty"` // the source's write counters at the copy point
	SwitchWrites *Counters  `json:"switchWrites,omitempty"` // this database's counters when it started serving
	CreatedAt    time.Time  `json:"createdAt"`
	ServingSince *time.Time `json:"servingSince,omitempty"`
}

// lineage is a connection to the lineage database with its rows as read under the lock.
type lineage struct {
	c    *pgx.Conn
	name string
	rows map[string]Row
}

// ensureLineage creates the lineage database and table when missing. Without CREATEDB nothing
// can be copied: refused here, before anything changes.
func (e *Engine) ensureLineage(ctx context.Context) (err error) {
	c, err := e.connect(ctx, e.o.Base)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close(context.WithoutCancel(ctx))) }()
	var createdb, exists bool
	if err := c.QueryRow(ctx, `SELECT rolcreatedb OR rolsuper, EXISTS (SELECT FROM pg_database WHERE datname = $1)
		FROM pg_roles WHERE rolname = current_user`, e.o.Lineage).Scan(&createdb, &exists); err != nil {
		return fmt.Errorf("reading the role's privileges: %w", err)
	}
	if !createdb {
		return fmt.Errorf("%w: role %q may not create databases (no CREATEDB), and the copy strategy creates one per schema version — "+
			"ALTER ROLE %s CREATEDB, or use schemaUpdate.strategy=inPlace (managed services that forbid it need inPlace)",
			ErrCannotCopy, e.cfg.User, pgx.Identifier{e.cfg.User}.Sanitize())
	}
	if exists {
		return nil
	}
	// The first run copies the base: everything the copy will check is checked here, on the
	// base, so that a refusal leaves not even the lineage database behind.
	base := Row{Name: e.o.Base, Version: -1, State: stateReady, Serving: true}
	v, ok, verr := e.readVersion(ctx, e.o.Base)
	if ok {
		base.Version = v
	}
	if e.o.Target != e.o.Base {
		// A role that may not read the base is refused with the reason (not its owner) first.
		if err := e.preflight(ctx, &lineage{c: c, rows: map[string]Row{base.Name: base}}, base); err != nil {
			return err
		}
	}
	if verr != nil {
		return verr
	}
	e.log.Info("creating the lineage database", "database", e.o.Lineage)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.o.Lineage}.Sanitize()); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42P04" { // created meanwhile by another run
			return fmt.Errorf("creating the lineage database %q: %w", e.o.Lineage, err)
		}
	}
	return nil
}

// openLineage connects to the lineage database; lock creates the table when missing.
func (e *Engine) openLineage(ctx context.Context) (*lineage, error) {
	c, err := e.connect(ctx, e.o.Lineage)
	if err != nil {
		return nil, err
	}
	return &lineage{c: c, name: e.o.Lineage}, nil
}

// readLineage returns the lineage rows for a reader (the gate), or ok false when there is no
// lineage database or table yet.
func (e *Engine) readLineage(ctx context.Context) (l *lineage, ok bool, err error) {
	c, err := e.connect(ctx, e.o.Lineage)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3D000" { // invalid_catalog_name: not created yet
			return nil, false, nil
		}
		return nil, false, err
	}
	l = &lineage{c: c, name: e.o.Lineage}
	var exists bool
	if err := c.QueryRow(ctx, `SELECT to_regclass('schemahook_copies') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return nil, false, errors.Join(err, l.close())
	}
	if err := l.load(ctx); err != nil {
		return nil, false, errors.Join(err, l.close())
	}
	return l, true, nil
}

func (l *lineage) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.c.Close(ctx)
}

// lock takes the lineage lock (one activation at a time per base) and reads the rows under it.
// It is a session lock: released when the connection closes, even if the hook is killed.
func (l *lineage) lock(ctx context.Context) error {
	if _, err := l.c.Exec(ctx, `SELECT pg_advisory_lock(hashtext('schemahook copy lineage'))`); err != nil {
		return fmt.Errorf("waiting for the lineage lock (another schemahook copying or switching this database?): %w", err)
	}
	// Under the lock: two first runs creating the table and granting on it at once would fail
	// ("tuple concurrently updated").
	var exists bool
	if err := l.c.QueryRow(ctx, `SELECT to_regclass('schemahook_copies') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("reading the lineage: %w", err)
	}
	if !exists {
		if _, err := l.c.Exec(ctx, lineageDDL); err != nil {
			return fmt.Errorf("creating the lineage table in %q: %w", l.name, err)
		}
	}
	return l.load(ctx)
}

func (l *lineage) load(ctx context.Context) error {
	rows, err := l.c.Query(ctx, `SELECT name, version, coalesce(source, ''), state, serving, frozen, copy_point,
		source_writes, switch_writes, created_at, serving_since FROM schemahook_copies`)
	if err != nil {
		return fmt.Errorf("reading the lineage: %w", err)
	}
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Row, error) {
		var r Row
		var v int64
		err := row.Scan(&r.Name, &v, &r.Source, &r.State, &r.Serving, &r.Frozen, &r.CopyPoint,
			&r.SourceWrites, &r.SwitchWrites, &r.CreatedAt, &r.ServingSince)
		r.Version = int(v)
		return r, err
	})
	if err != nil {
		return fmt.Errorf("reading the lineage: %w", err)
	}
	l.rows = make(map[string]Row, len(rs))
	for _, r := range rs {
		l.rows[r.Name] = r
	}
	return nil
}

// serving returns the row of the serving database.
func (l *lineage) serving() (Row, bool) {
	for _, r := range l.rows {
		if r.Serving {
			return r, true
		}
	}
	return Row{}, false
}

// ancestors returns the databases name was copied from, nearest first.
func (l *lineage) ancestors(name string) []string {
	var out []string
	for r, ok := l.rows[name]; ok && r.Source != "" && len(out) <= len(l.rows); r, ok = l.rows[r.Source] {
		out = append(out, r.Source)
	}
	return out
}

// insert writes r (replacing a row of the same name) and keeps it in memory.
func (l *lineage) insert(ctx context.Context, r Row) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	_, err := l.c.Exec(ctx, `INSERT INTO schemahook_copies (name, version, source, state, serving, frozen, copy_point,
			source_writes, switch_writes, created_at, serving_since)
		VALUES ($1, $2, nullif($3, ''), $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source, state = EXCLUDED.state,
			serving = EXCLUDED.serving, frozen = EXCLUDED.frozen, copy_point = EXCLUDED.copy_point,
			source_writes = EXCLUDED.source_writes, switch_writes = EXCLUDED.switch_writes,
			created_at = EXCLUDED.created_at, serving_since = EXCLUDED.serving_since`,
		r.Name, int64(r.Version), r.Source, r.State, r.Serving, r.Frozen, r.CopyPoint, r.SourceWrites.jsonb(), r.SwitchWrites.jsonb(),
		r.CreatedAt, r.ServingSince)
	if err != nil {
		return fmt.Errorf("recording %q in the lineage: %w", r.Name, err)
	}
	l.rows[r.Name] = r
	return nil
}

// remove deletes name's row.
func (l *lineage) remove(ctx context.Context, name string) error {
	if _, err := l.c.Exec(ctx, `DELETE FROM schemahook_copies WHERE name = $1`, name); err != nil {
		return fmt.Errorf("removing %q from the lineage: %w", name, err)
	}
	delete(l.rows, name)
	return nil
}

// switchTo records that to serves from now on, with baseline as its write counters at the
// switch, and that from no longer does (and is frozen); one transaction, so exactly one row
// serves.
func (l *lineage) switchTo(ctx context.Context, from, to string, baseline *Counters) error {
	now := time.Now()
	err := pgx.BeginFunc(ctx, l.c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE schemahook_copies SET serving = false, frozen = true WHERE name = $1`, from); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE schemahook_copies SET serving = true, frozen = false, state = $2, serving_since = $3, switch_writes = $4::jsonb WHERE name = $1`,
			to, stateReady, now, baseline.jsonb())
		return err
	})
	if err != nil {
		return fmt.Errorf("recording the switch from %q to %q in the lineage: %w", from, to, err)
	}
	f, t := l.rows[from], l.rows[to]
	f.Serving, f.Frozen = false, true
	t.Serving, t.Frozen, t.State, t.ServingSince, t.SwitchWrites = true, false, stateReady, &now, baseline
	l.rows[from], l.rows[to] = f, t
	return nil
}
