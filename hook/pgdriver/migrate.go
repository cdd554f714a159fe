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
