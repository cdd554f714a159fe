package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/bluegreen"
	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/kube"
)

// ExitWriteLoss: switching back to an older database was refused because the newer one took
// writes since it started serving (the copy strategy).
const ExitWriteLoss = 11

// Strategies of update and guard.
const (
	strategyInPlace = "inPlace"
	strategyCopy    = "copy"
)

// copyFlags are the copy strategy's settings (schemaUpdate.strategy=copy), shared by update and
// guard: both run bluegreen.Engine.Activate, which copies, updates in place or switches back as
// the lineage says.
type copyFlags struct {
	strategy string
	o        bluegreen.Options
	version  int
	method   string
	restore  func(error) error // set when --stop-workloads stopped writers for the copy
}

func (c *copyFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.strategy, "strategy", strategyInPlace, "inPlace: migrate the connection's database; copy: freeze it, copy it with CREATE DATABASE … TEMPLATE to --copy-database, migrate the copy and switch to it (see the README, \"Blue/green\")")
	f.StringVar(&c.o.Target, "copy-database", "", "copy strategy: the database this release uses, named by its schema version (e.g. app__v5); the connection's database is the base")
	f.IntVar(&c.version, "copy-version", -1, "copy strategy: the schema version --copy-database stands for; must be the migrations' head (-1: the head)")
	f.StringVar(&c.o.Lineage, "copy-lineage", "", "database holding the copy lineage (default <base>__schemahook)")
	f.StringVar(&c.method, "copy-method", string(bluegreen.WALLog), "CREATE DATABASE STRATEGY of the copy: wal_log or file_copy (on PostgreSQL 18 with file_copy_method=clone, a near-instant reflink copy)")
	f.IntVar(&c.o.Keep, "copy-keep", 3, "copies to keep; older ones are dropped after a switch (never the serving database nor the one it was copied from)")
	f.Int64Var(&c.o.DiskBudget, "copy-disk-budget", 0, "bytes the copies may take together on the server; a copy that would exceed it is refused (0: not checked — PostgreSQL cannot report free disk space)")
	f.DurationVar(&c.o.SessionWait, "copy-session-wait", 30*time.Second, "how long the copy keeps ending sessions that reconnect to the source before giving up")
	acceptWriteLossFlag(cmd, &c.o.AcceptWriteLoss)
}

func acceptWriteLossFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "accept-write-loss", false, "copy strategy: switch back to an older database even though the newer one took writes since it started serving (they are lost)")
}

// enabled reports whether the copy strategy is selected, refusing an unknown strategy.
func (c *copyFlags) enabled() (bool, error) {
	switch c.strategy {
	case strategyInPlace, "":
		return false, nil
	case strategyCopy:
		return true, nil
	}
	return false, usagef("--strategy %q: use inPlace or copy", c.strategy)
}

// activate runs the copy strategy: the engine decides between updating the serving copy in
// place, copying and switching, and switching back. With --stop-workloads the selected writers
// are stopped first, only when a copy will be made.
func (c *copyFlags) activate(ctx context.Context, a *app, mf *migrationFlags, sf *stopFlags) error {
	eng, err := c.engine(a, mf)
	if err != nil {
		return err
	}
	if strings.TrimSpace(sf.selector) != "" {
		if err := c.stopIfCopying(ctx, a, eng, sf); err != nil {
			return err
		}
	}
	res, err := eng.Activate(ctx)
	if err != nil {
		if c.restore != nil {
			a.log.Warn("copy failed: restoring the stopped workloads")
			err = c.restore(err)
		}
		return err
	}
	a.log.Info("copy strategy done", "action", string(res.Action), "serving", res.Target, "previous", res.From, "dropped", len(res.Dropped))
	return nil
}

// stopIfCopying stops the selected workloads when the engine is about to copy. A failure after
// they stopped restores them, as update does.
func (c *copyFlags) stopIfCopying(ctx context.Context, a *app, eng *bluegreen.Engine, sf *stopFlags) error {
	action, err := eng.Plan(ctx)
	if err != nil || action != bluegreen.Copied {
		return err
	}
	if sf.timeout <= 0 {
		return usagef("--stop-timeout %s: must be positive", sf.timeout)
	}
	k, err := kube.InCluster()
	if err != nil {
		return err
	}
	self, _ := os.Hostname()
	a.log.Info("copying: stopping workloads first", "selector", sf.selector, "namespace", k.Namespace())
	stopped, err := k.Stop(ctx, sf.selector, sf.timeout, self, a.log)
	if err != nil {
		return err
	}
	// The engine runs next; if it fails, activate restores the workloads.
	c.restore = func(err error) error { return errors.Join(err, stopped.Restore(context.WithoutCancel(ctx))) }
	return nil
}

// engine builds the engine from the flags: the connection's database is the base.
func (c *copyFlags) engine(a *app, mf *migrationFlags) (*bluegreen.Engine, error) {
	if a.migrationsDir == "" {
		return nil, errNoMigrations
	}
	cfg, err := dbconn.Config(a.databaseURL)
	if err != nil {
		return nil, err
	}
	cat, err := a.catalog()
	if err != nil {
		return nil, err
	}
	head := int(cat.Head().Version)
	if c.version >= 0 && c.version != head {
		return nil, usagef("--copy-version %d (schemaUpdate.copy.schemaVersion): the migrations' head is %d — set it to %d, so that the copy's name says what it holds", c.version, head, head)
	}
	if c.o.Target == "" {
		return nil, usagef("--strategy copy needs --copy-database (the chart sets it from schemaUpdate.copy.nameTemplate)")
	}
	if c.o.Keep < 1 {
		// The engine reads a zero Keep as its default; a user's 0 must not silently become 3.
		return nil, usagef("--copy-keep %d (schemaUpdate.copy.keep): keep at least 1 copy (the serving database and the one it was copied from are never dropped)", c.o.Keep)
	}
	o := c.o
	o.Base, o.Version, o.Method = cfg.Database, head, bluegreen.Method(c.method)
	o.MigrationsTable, o.HistoryTable = a.migrationsTable, a.historyTable
	hooks := bluegreen.Hooks{
		Validate: func(ctx context.Context, database string) error {
			r, err := a.runnerOn(mf.d, mf.waitForDB, database)
			if err != nil {
				return err
			}
			_, err = r.Pending(ctx)
			return err
		},
		Migrate: func(ctx context.Context, database string) error {
			r, err := a.runnerOn(mf.d, mf.waitForDB, database)
			if err != nil {
				return err
			}
			_, err = r.Update(ctx)
			return err
		},
	}
	return bluegreen.New(cfg, o, hooks, a.log), nil
}

// checkLineage is the gate's copy-strategy check (check --copy-lineage): refuse a pod whose
// database is an older one when switching back to it would lose writes.
func (a *app) checkLineage(ctx context.Context, lineage string, accept bool) error {
	cfg, err := dbconn.Config(a.databaseURL)
	if err != nil {
		return err
	}
	o := bluegreen.Options{Lineage: lineage, AcceptWriteLoss: accept, MigrationsTable: a.migrationsTable, HistoryTable: a.historyTable}
	if err := bluegreen.New(cfg, o, bluegreen.Hooks{}, a.log).Check(ctx, cfg.Database); err != nil {
		return fmt.Errorf("copy lineage (%s): %w", lineage, err)
	}
	return nil
}
