// Package verify checks that every down migration undoes its up migration. It creates a scratch
// database, applies the migrations one at a time, reverts them one at a time, applies them all
// again, and compares a catalog snapshot after every step with the one the step must reproduce:
// after down N the schema must equal the schema after up N-1, and after the second up N it must
// equal the schema after the first up N. The migrations run through golang-migrate with
// schemahook's own driver, exactly as `update` runs them, so what is verified is what deploys.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/source"
)

// ErrMismatch means a step did not reproduce the schema it must: a down migration that does
// not undo its up migration, or an up migration that gives a different schema when applied again
// after its down. Returned errors are *MismatchError.
var ErrMismatch = errors.New("down migration does not undo its up migration")

// Phase says which pass a mismatch was found in.
type Phase string

const (
	// PhaseDown: after down N the schema differs from the schema after up N-1.
	PhaseDown Phase = "down"
	// PhaseReUp: up N applied again after its down gives a different schema than the first time.
	PhaseReUp Phase = "re-up"
)

// MismatchError describes the first step whose schema differs from what it must be.
type MismatchError struct {
	Migration *source.Migration
	Phase     Phase
	// Diff lists the snapshot lines that differ: "- " what the schema must have and lacks,
	// "+ " what it has and must not. See Snapshot for the line format.
	Diff []string
}

func (e *MismatchError) Error() string {
	if len(e.Diff) == 1 {
		return e.headline() + " (1 line differs)"
	}
	return fmt.Sprintf("%s (%d lines differ)", e.headline(), len(e.Diff))
}

// Unwrap makes errors.Is(err, ErrMismatch) hold.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

func (e *MismatchError) headline() string {
	m := e.Migration
	if e.Phase == PhaseReUp {
		return fmt.Sprintf("%s gives a different schema when applied again after %s", m.Up.Name, m.DownName())
	}
	return fmt.Sprintf("%s does not undo %s", m.DownName(), m.Up.Name)
}

// WriteText writes the mismatch for a reader: what differs and what to do about it.
func (e *MismatchError) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "FAIL: %s\n", e.headline())
	if e.Phase == PhaseReUp {
		fmt.Fprintf(&b, "  schema after the first up %d (-) and after down and up again (+):\n", e.Migration.Version)
	} else {
		fmt.Fprintf(&b, "  schema before up %d (-) and after its down (+):\n", e.Migration.Version)
	}
	for _, l := range e.Diff {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	if e.Phase == PhaseReUp {
		b.WriteString("  The down file leaves something behind that changes how the up file applies (or the up file depends on state outside the schema); make the down file remove exactly what the up file creates.\n")
	} else {
		b.WriteString("  Lines with - are missing after the down migration; lines with + are left over or were changed. Make the down file remove exactly what the up file adds and restore what it removes.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Report says what a successful Verify checked.
type Report struct {
	Migrations int    // migrations applied in each up pass
	Reverted   []uint // versions whose down migration was verified, in the order they ran
	// StoppedAt is the irreversible migration the down pass stopped at; nil when it reached zero.
	StoppedAt *source.Migration
}

// WriteText writes the report for a reader.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ok: up %d migrations, down %d, up again: every down migration undoes its up migration\n", r.Migrations, len(r.Reverted))
	if r.StoppedAt != nil {
		fmt.Fprintf(&b, "note: the down pass stopped at %s, which is irreversible; migrations up to version %d were not reverted\n",
			r.StoppedAt.Up.Name, r.StoppedAt.Version)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Verifier runs the up → down → up check for one catalog on one server.
type Verifier struct {
	server  *pgx.ConnConfig
	catalog *source.Catalog
	o       options
}

type options struct {
	log       *slog.Logger
	driver    pgdriver.Options
	waitForDB time.Duration
}

// Option configures a Verifier.
type Option func(*options)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithDriverOptions sets the driver options (table names, lock timeout) the migrations run with.
func WithDriverOptions(d pgdriver.Options) Option { return func(o *options) { o.driver = d } }

// WithWaitForDB sets how long to wait for the server to accept connections (default 0: one attempt).
func WithWaitForDB(d time.Duration) Option { return func(o *options) { o.waitForDB = d } }

// New returns a Verifier. server says where to connect; its database is only used to connect
// and to CREATE DATABASE the scratch database, which Verify drops again. The role needs CREATEDB.
func New(server *pgx.ConnConfig, catalog *source.Catalog, opts ...Option) *Verifier {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return &Verifier{server: server, catalog: catalog, o: o}
}

// Verify creates a uniquely named scratch database, applies every up migration one by one,
// reverts them one by one down to zero (or to the highest irreversible migration, which has no
// down file), applies them again, and drops the scratch database whatever happened. It returns
// a *MismatchError (ErrMismatch) for the first step whose schema differs from what it must be,
// a *pgdriver.MigrationError when a file fails, and dbconn.ErrUnreachable when the server does
// not answer within the wait.
func (v *Verifier) Verify(ctx context.Context) (rep Report, err error) {
	// Verify runs every file: one that may not run is refused before a scratch database exists.
	if err := v.catalog.ReadDowns(); err != nil {
		return rep, err
	}
	if err := v.catalog.Runnable(v.catalog.Migrations()); err != nil {
		return rep, err
	}
	admin, err := dbconn.Connect(ctx, v.server, v.o.waitForDB, v.o.log)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, closeConn(admin)) }()

	name, err := v.createScratch(ctx, admin)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, v.dropScratch(ctx, admin, name)) }()

	cfg := v.server.Copy()
	cfg.Database = name
	conn, err := dbconn.Connect(ctx, cfg, 0, v.o.log)
	if err != nil {
		return rep, err
	}
	// Closed before the deferred drop runs: a database with a session cannot be dropped
	// without FORCE, which older servers lack.
	defer func() { err = errors.Join(err, closeConn(conn)) }()
	return v.run(ctx, conn)
}

// run does the three passes on the scratch database conn is connected to.
func (v *Verifier) run(ctx context.Context, conn *pgx.Conn) (rep Report, err error) {
	drv, err := pgdriver.New(ctx, conn, v.catalog, v.o.driver, v.o.log)
	if err != nil {
		return rep, err
	}
	// The tables exist before the first snapshot, so that every snapshot leaves out the same ones.
	if err := drv.EnsureTables(); err != nil {
		return rep, err
	}
	exclude := v.ownTables()
	snap := func() (Snapshot, error) { return TakeSnapshot(ctx, conn, exclude...) }
	step := func(n int) error {
		if err := drv.Migrate(func(m *migrate.Migrate) error { return m.Steps(n) }); err != nil {
			return fmt.Errorf("on the scratch database: %w", err)
		}
		return nil
	}

	migs := v.catalog.Migrations()
	rep.Migrations = len(migs)
	// ups[i] is the schema with the first i migrations applied.
	ups := make([]Snapshot, len(migs)+1)
	if ups[0], err = snap(); err != nil {
		return rep, err
	}
	for i := range migs {
		if err := step(1); err != nil {
			return rep, err
		}
		if ups[i+1], err = snap(); err != nil {
			return rep, err
		}
	}
	v.o.log.Info("verify: applied every migration", "count", len(migs))

	bottom := 0 // migrations at or below this index stay applied
	for i := len(migs); i > 0; i-- {
		mig := migs[i-1]
		if mig.Irreversible {
			rep.StoppedAt, bottom = mig, i
			v.o.log.Info("verify: stopping the down pass at an irreversible migration", "version", mig.Version, "name", mig.Name)
			break
		}
		if err := step(-1); err != nil {
			return rep, err
		}
		got, err := snap()
		if err != nil {
			return rep, err
		}
		if d := Diff(ups[i-1], got); len(d) > 0 {
			return rep, &MismatchError{Migration: mig, Phase: PhaseDown, Diff: d}
		}
		rep.Reverted = append(rep.Reverted, mig.Version)
	}
	v.o.log.Info("verify: reverted migrations", "count", len(rep.Reverted))

	for i := bottom + 1; i <= len(migs); i++ {
		if err := step(1); err != nil {
			return rep, err
		}
		got, err := snap()
		if err != nil {
			return rep, err
		}
		if d := Diff(ups[i], got); len(d) > 0 {
			return rep, &MismatchError{Migration: migs[i-1], Phase: PhaseReUp, Diff: d}
		}
	}
	v.o.log.Info("verify: applied every migration again; the schema matches")
	return rep, nil
}

// ownTables names schemahook's tables, which the snapshots leave out. The driver applies the
// same defaults to empty names.
func (v *Verifier) ownTables() []string {
	mt, ht := v.o.driver.MigrationsTable, v.o.driver.HistoryTable
	if mt == "" {
		mt = "schema_migrations"
	}
	if ht == "" {
		ht = "schemahook_history"
	}
	return []string{pgx.Identifier{mt}.Sanitize(), pgx.Identifier{ht}.Sanitize()}
}

// createScratch creates the scratch database. The name is random so that concurrent CI jobs on
// one server do not collide, and recognizable so that one left behind by a killed run can be
// found and dropped.
func (v *Verifier) createScratch(ctx context.Context, admin *pgx.Conn) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("naming the scratch database: %w", err)
	}
	name := "schemahook_verify_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating the scratch database %s on %s (the role needs CREATEDB; point --server-url at a server where it has it): %w",
			name, dbconn.Describe(v.server), err)
	}
	v.o.log.Info("verify: created scratch database", "database", name)
	return name, nil
}

// dropScratch drops the scratch database, also after ctx was cancelled.
func (v *Verifier) dropScratch(ctx context.Context, admin *pgx.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	sql := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize()
	if major(admin.PgConn().ParameterStatus("server_version")) >= 13 {
		sql += " WITH (FORCE)" // a migration may have left a session behind (e.g. dblink)
	}
	if _, err := admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("dropping the scratch database %s (drop it by hand): %w", name, err)
	}
	v.o.log.Info("verify: dropped scratch database", "database", name)
	return nil
}

func closeConn(c *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Close(ctx)
}

func major(serverVersion string) int {
	n, _ := strconv.Atoi(strings.SplitN(serverVersion, ".", 2)[0])
	return n
}
