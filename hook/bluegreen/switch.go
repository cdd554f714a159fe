package bluegreen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/jackc/pgx/v5"
)

// switchBack makes Target, a database the serving one descends from, serve again. It measures
// the writes made to the databases it leaves since they started serving first without touching
// them (a refusal then costs the serving release nothing), then again after freezing the serving
// database and ending its sessions, whose statistics are flushed as they exit — so a write that
// committed before the freeze is counted. Refused: the serving database is unfrozen and keeps
// serving.
func (e *Engine) switchBack(ctx context.Context, l *lineage, serving Row) ([]Writes, error) {
	target := e.o.Target
	lost, err := e.lostWrites(ctx, l, serving, target)
	if err != nil {
		return nil, err
	}
	if len(lost) > 0 && !e.o.AcceptWriteLoss {
		return lost, writeLossError(serving.Name, target, lost)
	}
	if err := e.freeze(ctx, l, serving.Name); err != nil {
		return lost, errors.Join(err, e.unfreeze(context.WithoutCancel(ctx), l, serving.Name))
	}
	undo := func(err error) ([]Writes, error) {
		ctx := context.WithoutCancel(ctx)
		return lost, errors.Join(err, e.freezeOnly(ctx, l, target), e.unfreeze(ctx, l, serving.Name))
	}
	if lost, err = e.lostWrites(ctx, l, serving, target); err != nil {
		return undo(err)
	}
	if len(lost) > 0 {
		if !e.o.AcceptWriteLoss {
			return undo(writeLossError(serving.Name, target, lost))
		}
		for _, w := range lost {
			e.log.Warn("switching back and losing writes, as accepted (acceptWriteLoss)", "lost", w.String())
		}
	}
	if err := e.unfreeze(ctx, l, target); err != nil {
		return undo(err)
	}
	// Usually a no-op: Target is at the version the release expects.
	if err := e.hooks.Migrate(ctx, target); err != nil {
		return undo(err)
	}
	baseline, err := e.readCounters(ctx, target)
	if err != nil {
		return undo(err)
	}
	if err := l.switchTo(ctx, serving.Name, target, baseline); err != nil {
		return undo(err)
	}
	e.log.Info("switched back: the older database serves again, unfrozen; the newer one stays frozen (read-only)",
		"serving", target, "frozen", serving.Name)
	return lost, nil
}

// freezeOnly sets database read-only for new sessions without ending any: undoing an unfreeze.
func (e *Engine) freezeOnly(ctx context.Context, l *lineage, database string) error {
	_, err := l.c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{database}.Sanitize()+" SET default_transaction_read_only = on")
	if err != nil {
		return fmt.Errorf("freezing %q again: %w", database, err)
	}
	return nil
}

// retain drops the copies beyond the Keep newest, never the base, the serving database or the
// one it was copied from (the way back). It returns the dropped names; a failure is a warning:
// the upgrade itself succeeded.
func (e *Engine) retain(ctx context.Context, l *lineage) []string {
	serving, _ := l.serving()
	protected := []string{e.o.Base, serving.Name, serving.Source}
	var copies []Row
	for _, r := range l.rows {
		if r.Name != e.o.Base {
			copies = append(copies, r)
		}
	}
	sort.Slice(copies, func(i, j int) bool { return copies[i].CreatedAt.After(copies[j].CreatedAt) })
	var dropped []string
	kept := 0
	for _, r := range copies {
		if slices.Contains(protected, r.Name) || kept < e.o.Keep {
			kept++
			continue
		}
		if err := e.drop(ctx, l, r.Name); err != nil {
			e.log.Warn("retention could not drop an old copy; the next run tries again", "database", r.Name, "error", err.Error())
			continue
		}
		e.log.Info("retention dropped an old copy", "database", r.Name, "version", r.Version, "keep", e.o.Keep)
		dropped = append(dropped, r.Name)
	}
	return dropped
}

// recoverCrashed cleans up after a run that died midway (a killed Job): a copy still marked
// "copying" is dropped and its source, if it still serves, unfrozen — else the release would
// stay read-only.
func (e *Engine) recoverCrashed(ctx context.Context, l *lineage) error {
	for _, r := range l.rows {
		if r.State != stateCopying {
			continue
		}
		e.log.Warn("an earlier run stopped while copying: dropping its partial copy", "database", r.Name, "source", r.Source)
		if err := e.drop(ctx, l, r.Name); err != nil {
			return err
		}
		if src, ok := l.rows[r.Source]; ok && src.Serving {
			if err := errors.Join(e.allowConnections(ctx, l.c, src.Name, true), e.unfreeze(ctx, l, src.Name)); err != nil {
				return err
			}
		}
	}
	// A serving database is frozen only while a run copies it (a copying row, handled above)
	// or switches back from it: one left frozen is a switch back that stopped midway, before
	// the lineage moved. It still serves, so it must take writes again.
	for name, r := range l.rows {
		if !r.Serving || !r.Frozen {
			continue
		}
		e.log.Warn("an earlier switch back stopped midway: unfreezing the database that still serves", "database", name)
		if err := errors.Join(e.allowConnections(ctx, l.c, name, true), e.unfreeze(ctx, l, name)); err != nil {
			return err
		}
	}
	return nil
}
