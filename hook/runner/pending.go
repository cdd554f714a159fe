package runner

import (
	"context"
	"errors"

	"github.com/schemahook/schemahook/hook/pgdriver"
)

// Pending returns how many migrations Update would apply now: 0 when the schema is current.
// It reads without locking (waiting for the database like Update), so callers can decide
// whether to prepare for a migration (stop the database's writers) before taking the lock. When
// Update would refuse (dirty, drift, database newer than this release) it returns 0 and that
// refusal's error, the same Update returns. A migration in progress (a dirty version while
// another session holds the migration lock) is waited for, as Update would wait.
func (r *Runner) Pending(ctx context.Context) (n int, err error) {
	s, err := r.open(ctx, r.o.waitForDB)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	st, _, err := r.readSettled(s, pgdriver.Checksums, true)
	if err != nil {
		return 0, err
	}
	if err := r.validate(st); err != nil {
		return 0, err
	}
	n = len(r.catalog().After(versionPtr(st.Version)))
	if n > 0 {
		// Update would refuse a bad down file before migrating: say so before anything is
		// stopped for it.
		if err := r.catalog().ReadDowns(); err != nil {
			return 0, err
		}
		if err := r.catalog().Runnable(r.catalog().After(versionPtr(st.Version))); err != nil {
			return 0, err
		}
	}
	return n, nil
}
