// Package bluegreen is the copy strategy (schemaUpdate.strategy: copy): instead of migrating the
// database a release serves, it freezes that database, copies it on the same server with
// CREATE DATABASE … TEMPLATE, migrates the copy and makes the copy the serving one. Switching back
// (helm rollback, an Argo CD sync of an older revision) points the release at the frozen original
// again, with no down migration, and is refused when the newer database has taken writes since it
// started serving, unless the loss is accepted. Every copy is recorded in a lineage table, in a
// small database of its own on the same server, which the hook, the guard and the gate read.
//
// The one law every copy shares: writes to a database after its copy point are not in the copy,
// and writes to the copy after the switch are not in the original. Freezing (read-only by default
// for every new session, the existing ones ended) closes the first gap; measuring the newer
// database's write counters before switching back makes the second one a refusal, not a surprise.
package bluegreen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sentinel errors, each mapped to one exit code by the CLI.
var (
	// ErrCannotCopy: the copy cannot work here (no CREATEDB, not the source's owner, a name too
	// long, not enough disk, sessions that cannot be ended…). Returned before anything changed.
	ErrCannotCopy = errors.New("copy strategy refused")
	// ErrWriteLoss: switching back would lose the writes made to the newer database since it
	// started serving.
	ErrWriteLoss = errors.New("switching back would lose writes")
	// ErrNotServing: the gate's database is a copy that no longer serves (the release switched
	// away from it); its data is stale.
	ErrNotServing = errors.New("database is not the serving one")
)

// Method is the STRATEGY of CREATE DATABASE.
type Method string

// The two strategies of PostgreSQL ≥ 15. FileCopy checkpoints before and after and, on
// PostgreSQL 18 with file_copy_method = clone, copies by reflink in about constant time.
const (
	WALLog   Method = "wal_log"
	FileCopy Method = "file_copy"
)

// maxIdentifier is NAMEDATALEN-1: PostgreSQL silently truncates longer names, which would make two
// copies' names collide.
const maxIdentifier = 63

// Options are the settings of one activation.
type Options struct {
	// Base is the database named in the release's values (database.name): the first source,
	// never dropped, and the database the hook connects to first.
	Base string
	// Target is the database the release uses: its copy, named by content (e.g. app__v5).
	Target string
	// Version is the schema version the release's migrations end at: Target is migrated to it,
	// and the catalog's head must be it (the CLI checks).
	Version int
	// Lineage names the database of the lineage table; empty: DefaultLineage(Base).
	Lineage string
	// Method is CREATE DATABASE's STRATEGY (default WALLog).
	Method Method
	// Keep is how many copies to keep (default 3); the serving database and the one it was copied
	// from are never dropped.
	Keep int
	// DiskBudget is how many bytes the copies may take together on the server (0: unknown;
	// PostgreSQL does not report free disk space over SQL, so without it nothing is checked).
	DiskBudget int64
	// AcceptWriteLoss lets a switch back go ahead although the newer database took writes.
	AcceptWriteLoss bool
	// MigrationsTable and HistoryTable are schemahook's own tables (default schema_migrations and
	// schemahook_history): their writes are not the application's.
	MigrationsTable, HistoryTable string
	// SessionWait bounds how long the copy keeps ending sessions on the source and retrying
	// (default 30s): CREATE DATABASE … TEMPLATE fails while any other session is connected.
	SessionWait time.Duration
}

// DefaultLineage is the lineage database of base when none is named.
func DefaultLineage(base string) string { return base + "__schemahook" }

// Hooks are what the engine asks of the caller, which owns the migration runner.
type Hooks struct {
	// Validate returns an error when migrating database to the release's head would be refused
	// (dirty, drifted, newer). It only reads, and must close its connection before returning.
	Validate func(ctx context.Context, database string) error
	// Migrate brings database to the release's head with the normal transactional engine.
	Migrate func(ctx context.Context, database string) error
}

// Engine runs the copy strategy for one release.
type Engine struct {
	cfg   *pgx.ConnConfig // where and as whom to connect; the database is replaced per use
	o     Options
	hooks Hooks
	log   *slog.Logger
}

// New returns an Engine. cfg's Database is ignored: the engine connects to Base, Lineage, the
// source and the copy in turn.
func New(cfg *pgx.ConnConfig, o Options, hooks Hooks, log *slog.Logger) *Engine {
	if o.Lineage == "" {
		o.Lineage = DefaultLineage(o.Base)
	}
	if o.Method == "" {
		o.Method = WALLog
	}
	if o.MigrationsTable == "" {
		o.MigrationsTable = "schema_migrations"
	}
	if o.HistoryTable == "" {
		o.HistoryTable = "schemahook_history"
	}
	if o.Keep == 0 {
		o.Keep = 3
	}
	if o.SessionWait == 0 {
		o.SessionWait = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Engine{cfg: cfg, o: o, hooks: hooks, log: log}
}

// Action says what Activate did.
type Action string

// The outcomes of Activate.
const (
	Current    Action = "current"     // Target already served; it was updated in place (usually a no-op)
	Copied     Action = "copied"      // Target was copied from the serving database and migrated
	SwitchBack Action = "switch-back" // Target, an older database, serves again
)

// Result describes what Activate did.
type Result struct {
	Action    Action
	From      string    // the database that served before
	Target    string    // the database that serves now
	CopyPoint time.Time // Copied: when the copy was taken
	Lost      []Writes  // SwitchBack: the writes lost (accepted) or that refused the switch
	Dropped   []string  // databases removed by retention
}

// Activate makes Target the serving database at Version: what the pre-install/pre-upgrade hook
// and the pre-rollback guard run. When Target serves already it only runs the migrations on it
// (a no-op when current). When Target is a database the serving one descends from, it switches
// back — after checking that the databases it leaves took no write since they started serving
// (ErrWriteLoss otherwise, unless AcceptWriteLoss). Otherwise it freezes the serving database,
// copies it to Target, migrates Target and switches; a stale copy of that name left by an
// earlier switch back is dropped first. A failed copy or migration drops the partial copy and
// unfreezes the source, so the release keeps serving as before. Everything that can be checked
// beforehand (permissions, names, disk budget, sessions that cannot be ended, a source the
// migrations would refuse) is refused with ErrCannotCopy before anything changes. Retention runs
// last; its failures are warnings.
func (e *Engine) Activate(ctx context.Context) (res Result, err error) {
	if err := e.checkOptions(); err != nil {
		return res, err
	}
	if err := e.ensureLineage(ctx); err != nil {
		return res, err
	}
	l, err := e.openLineage(ctx)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.close()) }()
	if err := l.lock(ctx); err != nil {
		return res, err
	}
	serving, err := e.servingRow(ctx, l)
	if err != nil {
		return res, err
	}
	if err := e.recoverCrashed(ctx, l); err != nil {
		return res, err
	}
	res.From, res.Target = serving.Name, e.o.Target
	switch {
	case serving.Name == e.o.Target:
		res.Action = Current
		e.log.Info("the release's database serves already: updating it in place", "database", e.o.Target)
		if err := e.hooks.Migrate(ctx, e.o.Target); err != nil {
			return res, err
		}
		e.warnSourceWrites(ctx, l, serving)
	case slices.Contains(l.ancestors(serving.Name), e.o.Target):
		res.Action = SwitchBack
		lost, err := e.switchBack(ctx, l, serving)
		res.Lost = lost
		if err != nil {
			return res, err
		}
	case e.o.Target == e.o.Base:
		// Only a switch back may name the base (a release from before the copy strategy).
		return res, fmt.Errorf("%w: the copy's name %q is the base database's — the name template must make a new name (e.g. <database>__v<version>)", ErrCannotCopy, e.o.Target)
	default:
		res.Action = Copied
		cp, err := e.copyAndSwitch(ctx, l, serving)
		res.CopyPoint = cp
		if err != nil {
			return res, err
		}
	}
	res.Dropped = e.retain(ctx, l)
	return res, nil
}

func (e *Engine) checkOptions() error {
	for what, name := range map[string]string{"the base database (database.name)": e.o.Base, "the copy": e.o.Target, "the lineage database": e.o.Lineage} {
		if name == "" {
			return fmt.Errorf("%w: %s has no name — set database.name and schemaUpdate.copy.schemaVersion", ErrCannotCopy, what)
		}
		if len(name) > maxIdentifier {
			return fmt.Errorf("%w: the name of %s, %q, is %d bytes; PostgreSQL truncates names to %d bytes, so copies could collide — shorten database.name or schemaUpdate.copy.nameTemplate",
				ErrCannotCopy, what, name, len(name), maxIdentifier)
		}
	}
	if e.o.Target == e.o.Lineage {
		return fmt.Errorf("%w: the copy's name %q is that of the lineage database — the name template must make a new name (e.g. <database>__v<version>)", ErrCannotCopy, e.o.Target)
	}
	if e.o.Version < 0 {
		return fmt.Errorf("%w: schema version %d: must be the release's head migration version", ErrCannotCopy, e.o.Version)
	}
	if e.o.Method != WALLog && e.o.Method != FileCopy {
		return fmt.Errorf("%w: copy method %q: use wal_log or file_copy", ErrCannotCopy, e.o.Method)
	}
	if e.o.Keep < 1 {
		return fmt.Errorf("%w: keep %d: keep at least 1 copy (the serving database and its source are kept anyway)", ErrCannotCopy, e.o.Keep)
	}
	return nil
}

// servingRow returns the serving database's lineage row, recording the base as serving the
// first time the copy strategy runs.
func (e *Engine) servingRow(ctx context.Context, l *lineage) (Row, error) {
	if r, ok := l.serving(); ok {
		return r, nil
	}
	r := Row{Name: e.o.Base, Version: -1, State: stateReady, Serving: true}
	if v, ok, err := e.readVersion(ctx, e.o.Base); err != nil {
		return r, err
	} else if ok {
		r.Version = v
	}
	e.log.Info("first run of the copy strategy: the base database serves", "database", e.o.Base, "version", r.Version)
	return r, l.insert(ctx, r)
}

// connect opens a connection to database with the release's credentials.
func (e *Engine) connect(ctx context.Context, database string) (*pgx.Conn, error) {
	cfg := e.cfg.Copy()
	cfg.Database = database
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 10*time.Second {
		cfg.ConnectTimeout = 10 * time.Second
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to database %q as %q: %w", database, cfg.User, err)
	}
	return c, nil
}

// readVersion reads database's version row (ok false when it has none).
func (e *Engine) readVersion(ctx context.Context, database string) (v int, ok bool, err error) {
	c, err := e.connect(ctx, database)
	if err != nil {
		return 0, false, err
	}
	defer func() { err = errors.Join(err, c.Close(context.WithoutCancel(ctx))) }()
	table := e.o.MigrationsTable
	var exists bool
	if err := c.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil || !exists {
		return 0, false, err
	}
	var v64 int64
	err = c.QueryRow(ctx, `SELECT version FROM `+pgx.Identifier{table}.Sanitize()+` LIMIT 1`).Scan(&v64)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return int(v64), err == nil, err
}

// Plan returns what Activate would do now, reading only (nothing is created): Copied also when
// there is no lineage yet.
func (e *Engine) Plan(ctx context.Context) (Action, error) {
	l, ok, err := e.readLineage(ctx)
	if err != nil {
		return Copied, err
	}
	serving := Row{Name: e.o.Base} // before the first run, the base serves
	if ok {
		defer l.close()
		if r, found := l.serving(); found {
			serving = r
		}
	}
	switch {
	case serving.Name == e.o.Target:
		return Current, nil
	case ok && slices.Contains(l.ancestors(serving.Name), e.o.Target):
		return SwitchBack, nil
	}
	return Copied, nil
}
