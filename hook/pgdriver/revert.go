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
	if int(a.Version) != d.cur {
		return fmt.Errorf("reverting %d: the database is at %d", a.Version, d.cur)
	}
	file := &source.File{
		Name:          fmt.Sprintf("%06d_%s.down.sql (stored)", a.Version, a.Name),
		SQL:           *a.DownSQL,
		NoTransaction: a.DownNoTransaction,
	}
	d.pending = &step{
		from: d.cur, to: to, up: false, started: time.Now(), file: file,
		mig: &source.Migration{Version: a.Version, Name: a.Name},
	}
	if err := d.Run(strings.NewReader(file.SQL)); err != nil {
		d.pending = nil
		return err
	}
	return d.SetVersion(to, false)
}
