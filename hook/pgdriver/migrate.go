package pgdriver

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-migrate/migrate/v4"
)

// Migrate runs fn on a golang-migrate instance over the driver's catalog (served from memory,
// see source.Catalog.Driver) and the driver. ErrNoChange counts as success. The source is
// closed afterwards; the driver's connection stays open (it belongs to the caller).
func (d *Driver) Migrate(fn func(*migrate.Migrate) error) error {
	// Every step records or runs a down file: a bad one must stop the run before the first.
	if err := d.catalog.ReadDowns(); err != nil {
		return err
	}
	src, err := d.catalog.Driver()
	if err != nil {
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, "schemahook", d)
	if err != nil {
		return errors.Join(fmt.Errorf("setting up migrations: %w", err), src.Close())
	}
	// The driver polls for the lock under its own deadline and is reentrant (callers may
	// already hold it); golang-migrate's own lock timer must not fire first.
	m.LockTimeout = 24 * time.Hour
	err = fn(m)
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	return errors.Join(err, src.Close())
}

// Initialize brings a database with no version to the catalog's head, as Migrate with m.Up
// does, except that consecutive transactional migrations commit together: one transaction, sent
// as one query when the run ends, with each migration's version and history rows as they
// would have been committed one by one. A no-transaction migration ends a run — the run commits
// before it starts, and the next run starts after it — and so does a file that cannot travel
// in one query with its rows (see Run), which then runs alone. A failure therefore leaves the
// database as it was before its run: for the first run, empty and clean, so the install can
// simply be run again. Initialize refuses, before running anything, a database that has a
// version; Upgrade groups the same way from any version.
func (d *Driver) Initialize() error {
	d.install, d.groupEnd, d.initial = installArmed, int(d.catalog.Head().Version), true
	defer func() { d.install, d.initial = installOff, false }()
	return d.grouped(func(m *migrate.Migrate) error { return m.Up() })
}

// Upgrade runs fn, which must only move the database up to target (m.Up for the head,
// m.Migrate(target) below it), with its steps grouped as Initialize groups them: the pending
// transactional migrations commit all or nothing, split only at no-transaction migrations
// (and files that cannot travel in one query with their rows). A failure leaves the database
// at the version its group started from, clean — for an upgrade without no-transaction
// files, the version the previous release left — so a rollback of the release finds the
// schema it expects. The cost: a group holds every lock its migrations take until it commits,
// so a migration that locks a busy table stalls that table's users for the rest of the group
// (each attempt still gives up after the lock timeout and is retried whole). Options.CommitEach
// makes the runner use Migrate instead, one transaction per migration. With nothing pending it
// does nothing and returns nil.
func (d *Driver) Upgrade(target uint, fn func(*migrate.Migrate) error) error {
	d.install, d.groupEnd = installOn, int(target)
	defer func() { d.install = installOff }()
	return d.grouped(fn)
}

// grouped runs fn through Migrate with grouping on. A group still open when fn returns
// without error (fn stopped short of the target) is sent rather than dropped by Unlock.
func (d *Driver) grouped(fn func(*migrate.Migrate) error) error {
	return d.Migrate(func(m *migrate.Migrate) error {
		if err := fn(m); err != nil {
			return err
		}
		return d.flush()
	})
}
