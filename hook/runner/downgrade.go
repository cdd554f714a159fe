package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/source"
)

// ErrIrreversible: a downgrade needs to revert a migration that has no stored down SQL. It
// always comes together with ErrDatabaseNewer (the database stays newer than this release).
var ErrIrreversible = errors.New("downgrade impossible")

// Downgrade reverts the database to the catalog's head when the database is newer, using the
// down SQL stored in the history table for each migration above head, newest first, each in
// its own transaction. It checks every needed step before running any: a missing or
// irreversible down refuses the whole downgrade (ErrIrreversible) and changes nothing. When
// the database is not newer it does nothing and returns a Result with no Applied versions.
// Result.Applied lists the reverted versions.
func (r *Runner) Downgrade(ctx context.Context) (res Result, err error) {
	err = r.locked(ctx, func(s *session) error {
		res, err = r.downgrade(s)
		return err
	})
	return res, err
}

func (r *Runner) downgrade(s *session) (res Result, err error) {
	st, err := s.drv.State(pgdriver.FullHistory)
	if err != nil {
		return res, err
	}
	res = Result{From: st.Version, To: st.Version}
	head := int(r.catalog().Head().Version)
	if st.Dirty {
		return res, dirtyError(st.Version, r.catalog())
	}
	if st.Version <= head {
		r.o.log.Info("no downgrade needed", "version", st.Version, "head", head)
		return res, nil
	}
	// The drift check still applies to what this release knows.
	below := st
	below.Version = head
	if ds := r.drifts(below); len(ds) > 0 {
		return res, r.validate(below)
	}
	steps, err := r.downgradeSteps(st, head)
	if err != nil {
		return res, err
	}
	if _, _, err := s.drv.Version(); err != nil { // the driver tracks the current version
		return res, err
	}
	r.o.log.Info("downgrading schema with stored down migrations", "from", st.Version, "to", head, "steps", len(steps))
	start := time.Now()
	for i, a := range steps {
		to := head
		if i+1 < len(steps) {
			to = int(steps[i+1].Version)
		}
		if err := s.drv.RevertStored(a, to); err != nil {
			return res, err
		}
		res.To = to
		res.Applied = append(res.Applied, a.Version)
	}
	r.o.log.Info("schema downgraded", "from", st.Version, "to", res.To, "reverted", len(res.Applied),
		"duration", time.Since(start).Round(time.Millisecond).String())
	return res, nil
}

// downgradeSteps returns the history rows above head, newest first, after checking that each
// can be reverted and that the version row agrees with the history.
func (r *Runner) downgradeSteps(st pgdriver.State, head int) ([]pgdriver.Applied, error) {
	var steps []pgdriver.Applied
	for _, a := range st.History {
		if int(a.Version) > head {
			steps = append(steps, a)
		}
	}
	slices.Reverse(steps)
	if len(steps) == 0 || int(steps[0].Version) != st.Version {
		return nil, fmt.Errorf("%w, %w: the database is at version %d but its history has no record of it, so there is no stored down SQL — restore from a backup, or deploy the newer release again",
			ErrDatabaseNewer, ErrIrreversible, st.Version)
	}
	var blocked []string
	for _, a := range steps {
		switch {
		case a.Irreversible:
			blocked = append(blocked, fmt.Sprintf("%d (%s) is marked irreversible", a.Version, a.Name))
		case a.DownSQL == nil:
			blocked = append(blocked, fmt.Sprintf("%d (%s) has no stored down migration", a.Version, a.Name))
		default:
			// Stored from a file that an older release, or golang-migrate's adoption, accepted.
			name := fmt.Sprintf("the stored down SQL of %d (%s)", a.Version, a.Name)
			if err := source.NewFile(name, *a.DownSQL, a.DownNoTransaction).Runnable(); err != nil {
				blocked = append(blocked, err.Error())
			}
		}
	}
	if len(blocked) > 0 {
		return nil, fmt.Errorf("%w, %w from %d to %d: %s — nothing was changed; restore from a backup, or deploy the newer release again",
			ErrDatabaseNewer, ErrIrreversible, st.Version, head, strings.Join(blocked, "; "))
	}
	return steps, nil
}

// Guard is what the pre-rollback hook runs with the rollback target's binary: it returns nil
// when the database is not newer than this release's head (the rollback is safe for the
// schema); otherwise ErrDatabaseNewer with the choices — unless allowDowngrade is set, in
// which case it reverts the newer migrations with their stored down SQL (see Downgrade). A
// dirty database is refused (ErrDirty) either way; a migration in progress is waited for.
func (r *Runner) Guard(ctx context.Context, allowDowngrade bool) error {
	if allowDowngrade {
		_, err := r.Downgrade(ctx)
		return err
	}
	s, err := r.open(ctx, r.o.waitForDB)
	if err != nil {
		return err
	}
	// A migration in progress is waited for, as update would: its dirty mark is not a state to
	// judge a rollback by.
	st, _, err := r.readSettled(s, pgdriver.VersionOnly, true)
	err = errors.Join(err, s.close())
	if err != nil {
		return err
	}
	head := r.catalog().Head().Version
	if st.Dirty {
		// What the downgrade and the older release's update and gate would say too.
		return dirtyError(st.Version, r.catalog())
	}
	if st.Version > int(head) {
		return fmt.Errorf("%w: rolling back to a release whose schema is version %d, but the database is at %d. "+
			"The rollback was stopped before changing anything. Choose: restore the database from a backup taken before the upgrade, "+
			"or downgrade the schema: schemahook reverts migrations %d..%d with the down SQL stored when they were applied, when the release you go back to "+
			"has config.allowDowngrade=true (`schemahook guard --allow-downgrade`) — `helm rollback` reuses that revision's values, so go back with `helm upgrade --set config.allowDowngrade=true` "+
			"and the older chart and image instead (see the chart README, \"Rollbacks\")",
			ErrDatabaseNewer, head, st.Version, head+1, st.Version)
	}
	r.o.log.Info("rollback is safe for the schema", "database", st.Version, "release_head", head)
	return nil
}
