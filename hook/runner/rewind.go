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

// The development commands: down, goto and redo. They revert with the migration's down file
// when the directory has it, else with the down SQL stored in the history when it was
// applied (a file deleted or renamed while iterating), newest first, each migration in its own
// transaction under the migration lock, as update runs its steps. Every step is checked before
// the first runs: one that cannot be reverted refuses the whole command and changes nothing.

// ErrTarget: the version or count asked for does not exist or is not applied.
var ErrTarget = errors.New("invalid target")

// AllMigrations as Down's count reverts every applied migration.
const AllMigrations = -1

// Down reverts the newest n applied migrations (AllMigrations: all of them), newest first.
// Result.Applied lists the reverted versions and Result.To the version left. Nothing applied,
// or fewer than n, is ErrTarget; a dirty database is ErrDirty; a migration that is marked
// irreversible, or whose file is gone and whose history has no down SQL, is ErrIrreversible.
// In every refusal nothing is changed.
func (r *Runner) Down(ctx context.Context, n int) (res Result, err error) {
	if n < 1 && n != AllMigrations {
		return res, fmt.Errorf("%w: down %d: revert at least one migration", ErrTarget, n)
	}
	err = r.locked(ctx, func(s *session) error {
		st, applied, err := r.rewindState(s)
		if err != nil {
			return err
		}
		if n == AllMigrations {
			n = len(applied)
		}
		if len(applied) == 0 || n > len(applied) {
			return fmt.Errorf("%w: down %d: %d migrations are applied (version %d)", ErrTarget, n, len(applied), st.Version)
		}
		res, err = r.revertTo(s, st, applied, below(applied, n))
		return err
	})
	return res, err
}

// Goto brings the database to version v: below the current version it reverts every applied
// migration above v (v must be an applied version, or pgdriver.NilVersion for none); above, it
// applies the migrations up to v as update would (v must be a migration of the catalog, and
// the checks of Update apply). At v it changes nothing.
func (r *Runner) Goto(ctx context.Context, v int) (res Result, err error) {
	err = r.locked(ctx, func(s *session) error {
		st, applied, err := r.rewindState(s)
		if err != nil {
			return err
		}
		switch {
		case v == st.Version:
			r.o.log.Info("already at the target version", "version", v)
			res = Result{From: v, To: v}
			return nil
		case v > st.Version:
			if r.catalog().Lookup(uint(v)) == nil {
				return fmt.Errorf("%w: goto %d: no migration has version %d (the migrations go up to %d)",
					ErrTarget, v, v, r.catalog().Head().Version)
			}
			res, err = r.upTo(s, v)
			return err
		case v != pgdriver.NilVersion && !slices.Contains(applied, uint(v)):
			return fmt.Errorf("%w: goto %d: version %d is not applied (applied: %s)", ErrTarget, v, v, versionList(applied))
		}
		res, err = r.revertTo(s, st, applied, v)
		return err
	})
	return res, err
}

// Redo reverts the newest applied migration and applies it again from its file, under one
// lock: what a developer runs after editing the migration being written. The file must be in
// the catalog, and the migrations staying applied must match their files (ErrDrift), before
// anything is reverted.
func (r *Runner) Redo(ctx context.Context) (res Result, err error) {
	err = r.locked(ctx, func(s *session) error {
		st, applied, err := r.rewindState(s)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			return fmt.Errorf("%w: redo: no migration is applied — run `schemahook update`", ErrTarget)
		}
		cur := applied[len(applied)-1]
		m := r.catalog().Lookup(cur)
		if m == nil {
			return fmt.Errorf("%w: redo: version %d has no file in the migrations directory, so it cannot be applied again — use `schemahook down` to revert it", ErrTarget, cur)
		}
		prev := below(applied, 1)
		// The re-apply refuses what update refuses; ask before reverting anything.
		rest := st
		rest.Version = prev
		if err := r.validate(rest); err != nil {
			return err
		}
		if err := r.catalog().Runnable([]*source.Migration{m}); err != nil {
			return err
		}
		if _, err := r.revertTo(s, st, applied, prev); err != nil {
			return err
		}
		up, err := r.upTo(s, int(cur))
		res = Result{From: st.Version, To: up.To, Applied: up.Applied}
		return err
	})
	return res, err
}

// rewindState reads the state with the stored down SQL and the applied versions, ascending,
// refusing a dirty database.
func (r *Runner) rewindState(s *session) (pgdriver.State, []uint, error) {
	st, err := s.drv.State(pgdriver.FullHistory)
	if err != nil {
		return st, nil, err
	}
	if st.Dirty {
		return st, nil, dirtyError(st.Version, r.catalog())
	}
	return st, r.appliedVersions(st), nil
}

// appliedVersions lists the applied migrations: the history's rows up to the version, and, for
// a database migrated by golang-migrate whose history is not recorded yet (adopting), the
// catalog's migrations up to it, as golang-migrate applies them in order. A catalog file that
// the history does not list is otherwise not applied (e.g. added below the current version).
func (r *Runner) appliedVersions(st pgdriver.State) []uint {
	var out []uint
	for _, a := range st.History {
		if int(a.Version) <= st.Version {
			out = append(out, a.Version)
		}
	}
	if r.adopting(st) {
		for _, m := range r.catalog().Migrations() {
			if int(m.Version) <= st.Version {
				out = append(out, m.Version)
			}
		}
	}
	if st.Version >= 0 {
		out = append(out, uint(st.Version))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// below is the version left after reverting the newest n of applied.
func below(applied []uint, n int) int {
	if n >= len(applied) {
		return pgdriver.NilVersion
	}
	return int(applied[len(applied)-1-n])
}

// revertStep is one migration to revert and the SQL that reverts it.
type revertStep struct {
	mig  *source.Migration
	down *source.File
}

// revertTo reverts the applied migrations above to, newest first, each in its own
// transaction. Every step is checked before the first runs.
func (r *Runner) revertTo(s *session, st pgdriver.State, applied []uint, to int) (res Result, err error) {
	res = Result{From: st.Version, To: st.Version}
	steps, err := r.revertSteps(st, applied, to)
	if err != nil {
		return res, err
	}
	if !st.HasHistory {
		// A database migrated by golang-migrate: each step deletes its history row.
		if err := s.drv.EnsureTables(); err != nil {
			return res, err
		}
	}
	if _, _, err := s.drv.Version(); err != nil { // the driver tracks the current version
		return res, err
	}
	with := make([]string, len(steps))
	for i, step := range steps {
		with[i] = step.down.Name
	}
	r.o.log.Info("reverting migrations", "from", st.Version, "to", to, "steps", len(steps), "with", strings.Join(with, ", "))
	start := time.Now()
	for i, step := range steps {
		next := to
		if i+1 < len(steps) {
			next = int(steps[i+1].mig.Version)
		}
		if err := s.drv.Revert(step.mig, step.down, next); err != nil {
			return res, err
		}
		res.To = next
		res.Applied = append(res.Applied, step.mig.Version)
	}
	r.o.log.Info("schema reverted", "from", st.Version, "to", res.To, "reverted", len(res.Applied),
		"duration", time.Since(start).Round(time.Millisecond).String())
	return res, nil
}

// revertSteps returns what reverts each applied migration above to, newest first: the down
// file when the catalog has the migration, else the down SQL stored in its history row.
func (r *Runner) revertSteps(st pgdriver.State, applied []uint, to int) ([]revertStep, error) {
	history := map[uint]pgdriver.Applied{}
	for _, a := range st.History {
		history[a.Version] = a
	}
	var (
		steps   []revertStep
		blocked []string
		floor   uint // the newest migration that cannot be reverted
	)
	for i := len(applied) - 1; i >= 0 && int(applied[i]) > to; i-- {
		v := applied[i]
		if len(blocked) == 0 {
			floor = v // stays so unless this step can be reverted
		}
		if m := r.catalog().Lookup(v); m != nil {
			down, err := m.Down()
			switch {
			case err != nil:
				return nil, err
			case down == nil:
				blocked = append(blocked, fmt.Sprintf("%s is marked irreversible (it has no down file)", m.Up.Name))
			case down.Runnable() != nil:
				blocked = append(blocked, down.Runnable().Error())
			default:
				steps = append(steps, revertStep{m, down})
			}
			continue
		}
		a, ok := history[v]
		switch {
		case !ok:
			blocked = append(blocked, fmt.Sprintf("version %d has no file in the migrations directory and no history row", v))
		case a.Irreversible:
			blocked = append(blocked, fmt.Sprintf("%d (%s) is marked irreversible", v, a.Name))
		case a.DownSQL == nil:
			blocked = append(blocked, fmt.Sprintf("%d (%s) has no file in the migrations directory and no stored down SQL", v, a.Name))
		default:
			f := source.NewFile(fmt.Sprintf("%06d_%s.down.sql (stored)", v, a.Name), *a.DownSQL, a.DownNoTransaction)
			if err := f.Runnable(); err != nil {
				blocked = append(blocked, err.Error())
				continue
			}
			steps = append(steps, revertStep{&source.Migration{Version: v, Name: a.Name}, f})
		}
	}
	if len(blocked) > 0 {
		return nil, fmt.Errorf("%w from %d to %d: %s — nothing was changed; revert no further than version %d, or restore the database from a backup",
			ErrIrreversible, st.Version, to, strings.Join(blocked, "; "), floor)
	}
	return steps, nil
}

func versionList(vs []uint) string {
	if len(vs) == 0 {
		return "none"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}
