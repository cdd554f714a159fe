package bluegreen

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Check is the gate's half of the switch-back guarantee, for the pods of a release whose
// database is database: Argo CD never runs pre-rollback hooks, and a `helm rollback` may skip
// them, so an older release's pods can come up on their frozen database with nothing having
// asked whether the newer one took writes. Check only reads, with the gate's read-only
// credentials (CONNECT and PUBLIC's SELECT on the lineage):
//   - no lineage yet, database unknown to it, or serving: nil;
//   - database is one the serving database descends from: ErrWriteLoss when the databases it
//     would leave took writes since they started serving (unless AcceptWriteLoss), else nil with
//     a warning that database is still frozen until a hook switches back;
//   - any other copy (the release switched away from it): ErrNotServing.
//
// The gate cannot end sessions, so writes of the last seconds may not be counted yet (see
// Counters); the hook and the guard, which switch, measure exactly.
func (e *Engine) Check(ctx context.Context, database string) (err error) {
	l, ok, err := e.readLineage(ctx)
	if err != nil || !ok {
		return err
	}
	defer func() { err = errors.Join(err, l.close()) }()
	serving, ok := l.serving()
	if _, known := l.rows[database]; !ok || !known || serving.Name == database {
		return nil
	}
	if !slices.Contains(l.ancestors(serving.Name), database) {
		return fmt.Errorf("%w: %q is a copy the release switched away from (%q serves), so its data is stale — "+
			"this pod belongs to a release that no longer serves; deploy the serving release, or run the hook (helm upgrade, a sync) to copy afresh",
			ErrNotServing, database, serving.Name)
	}
	lost, err := e.lostWrites(ctx, l, serving, database)
	if err != nil {
		return err
	}
	if len(lost) > 0 && !e.o.AcceptWriteLoss {
		return writeLossError(serving.Name, database, lost)
	}
	e.log.Warn("this pod's database is an older one, still frozen (read-only): it serves again once a hook switches back (helm rollback's guard, or the schema-update hook of the sync)",
		"database", database, "serving", serving.Name)
	return nil
}
