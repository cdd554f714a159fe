package pgdriver

import (
	"fmt"
	"strings"
	"time"

	"github.com/schemahook/schemahook/hook/source"
)

// RevertStored reverts the applied migration a using the down SQL stored in the history table
// when it was applied, and sets the version to to (the next lower applied version, or
// NilVersion). This is how an older release undoes migrations it has never seen: the files
// are gone from its image, but the database kept what it needs. It runs exactly like a
// golang-migrate down step — same transaction scope, lock_timeout retries and history
// update — so a failure leaves a.Version applied and clean (or dirty for a no-transaction
// down). Call it under the migration lock.
func (d *Driver) RevertStored(a Applied, to int) error {
	if a.DownSQL == nil {
		return fmt.Errorf("migration %d (%s) has no stored down SQL", a.Version, a.Name)
	}
	file := &source.File{
		Name:          fmt.Sprintf("%06d_%s.down.sql (stored)", a.Version, a.Name),
		SQL:           *a.DownSQL,
		NoTransaction: a.DownNoTransaction,
	}
	return d.Revert(&source.Migration{Version: a.Version, Name: a.Name}, file, to)
}

// Revert reverts the applied migration m by running down — its down file, or the SQL stored
// for it (RevertStored) — as a golang-migrate down step, and sets the version to to. The
// development commands (down, goto, redo) use it so that a migration whose file is present
// and one whose file is gone revert the same way, one transaction each. Call it under the
// migration lock, after Version (the driver must know the current version).
func (d *Driver) Revert(m *source.Migration, down *source.File, to int) error {
	if int(m.Version) != d.cur {
		return fmt.Errorf("reverting %d: the database is at %d", m.Version, d.cur)
	}
	d.pending = &step{
		from: d.cur, to: to, up: false, started: time.Now(), file: down, mig: m,
	}
	if err := d.Run(strings.NewReader(down.SQL)); err != nil {
		d.pending = nil
		return err
	}
	return d.SetVersion(to, false)
}
