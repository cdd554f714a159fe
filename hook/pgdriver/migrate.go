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
// in one query with its rows (see Run), which then runs alone as on an upgrade. A failure
// therefore leaves the database as it was before its run: for the first run, empty and clean,
// so the install can simply be run again.
//
// Only an empty database is initialized this way: a run holds every lock its migrations take
// until it commits, which on live tables would stall their readers far longer than the lock
// timeout allows. Upgrades, downgrades and verify keep one transaction per migration.
// Initialize refuses, before running anything, a database that has a version.
func (d *Driver) Initialize() error {
	d.install = installArmed
	defer func() { d.install = installOff }()
	return d.Migrate(func(m *migrate.Migrate) error { return m.Up() })
}
