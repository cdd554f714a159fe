package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/source"
)

// Drift is one applied migration that no longer matches its file.
type Drift struct {
	Version  uint   `json:"version"`
	Name     string `json:"name"`
	Applied  string `json:"applied_checksum"`
	File     string `json:"file_checksum,omitempty"` // empty when the file is gone
	Problem  string `json:"problem"`
	FileName string `json:"file,omitempty"`
}

// Ref names a migration file.
type Ref struct {
	Version       uint   `json:"version"`
	Name          string `json:"name"`
	File          string `json:"file"`
	NoTransaction bool   `json:"no_transaction,omitempty"`
}

func ref(m *source.Migration) Ref {
	return Ref{Version: m.Version, Name: m.Name, File: m.Up.Name, NoTransaction: m.Up.NoTransaction}
}

func refs(ms []*source.Migration) []Ref {
	out := make([]Ref, 0, len(ms))
	for _, m := range ms {
		out = append(out, ref(m))
	}
	return out
}

// drifts compares the history with the files. Only migrations at or below st.Version count: a
// row above the database's version is a migration reverted without the history knowing
// (State.Reverted), and the downgrade path asks about the rows up to this release's head only.
func (r *Runner) drifts(st pgdriver.State) []Drift {
	var out []Drift
	for _, h := range st.History {
		if int(h.Version) > st.Version {
			break // ascending
		}
		m := r.catalog().Lookup(h.Version)
		switch {
		case m == nil:
			out = append(out, Drift{Version: h.Version, Name: h.Name, Applied: h.Checksum,
				Problem: "applied, but its file is missing from the migrations"})
		case m.Checksum != h.Checksum:
			out = append(out, Drift{Version: h.Version, Name: h.Name, Applied: h.Checksum, File: m.Checksum, FileName: m.Up.Name,
				Problem: "file changed after it was applied"})
		}
	}
	if st.Version >= 0 && r.catalog().Lookup(uint(st.Version)) == nil && st.Version <= int(r.catalog().Head().Version) {
		out = append(out, Drift{Version: uint(st.Version), Problem: "the database is at this version but no migration file has it"})
	}
	return out
}

// refusal returns the states no release may migrate from or run on: dirty, or newer than it.
func (r *Runner) refusal(st pgdriver.State) error {
	switch head := r.catalog().Head().Version; {
	case st.Dirty:
		return dirtyError(st.Version, r.catalog())
	case st.Version > int(head):
		return newerError(st.Version, head)
	}
	return nil
}

// validate returns why Update must refuse to touch the database, or nil.
func (r *Runner) validate(st pgdriver.State) error {
	if err := r.refusal(st); err != nil {
		return err
	}
	if ds := r.drifts(st); len(ds) > 0 {
		return fmt.Errorf("%w, refusing to migrate:\n  %s\napplied migrations must not change: restore the original files (e.g. from git) and put new changes in a new migration (schemahook create NAME)",
			ErrDrift, driftLines(ds))
	}
	return nil
}

// driftLines describes drifts, one per line.
func driftLines(ds []Drift) string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		switch {
		case d.FileName != "":
			lines[i] = fmt.Sprintf("%s: %s (applied sha256 %.12s…, file now %.12s…)", d.FileName, d.Problem, d.Applied, d.File)
		case d.Name != "":
			lines[i] = fmt.Sprintf("version %d (%s): %s", d.Version, d.Name, d.Problem)
		default:
			lines[i] = fmt.Sprintf("version %d: %s", d.Version, d.Problem)
		}
	}
	return strings.Join(lines, "\n  ")
}

// readSettled reads the state for a command that does not hold the migration lock, telling a
// migration in progress from one that stopped midway: both leave the version dirty — golang-migrate
// marks every step dirty while it runs it, schemahook a no-transaction file — but only the first
// has a session holding the migration lock. For a dirty version it returns that session (and
// the state as read), or, with wait, waits for the lock as update does (Options.LockWait, then
// ErrLockTimeout), reads again under it and returns that state with no holder. A dirty version
// with no holder is read once more: a migration that ended between the two reads left another row.
func (r *Runner) readSettled(s *session, detail pgdriver.Detail, wait bool) (pgdriver.State, *pgdriver.Holder, error) {
	st, err := s.drv.State(detail)
	for range 3 {
		if err != nil || !st.Dirty {
			return st, nil, err
		}
		h, err := s.drv.LockHolder()
		if err != nil {
			return st, nil, err
		}
		if h != nil && !wait {
			return st, h, nil
		}
		if h != nil {
			r.o.log.Info("a migration is in progress: waiting for it to end", "version", st.Version, "holder", h.String())
			if err := s.drv.Lock(); err != nil {
				return st, nil, err
			}
			st, err = s.drv.State(detail)
			return st, nil, errors.Join(err, s.drv.Unlock())
		}
		again, err := s.drv.State(detail)
		if err != nil || (again.Dirty && again.Version == st.Version) {
			return again, nil, err
		}
		st = again
	}
	return st, nil, err
}

// inProgress describes a migration that holder is running, for messages. It says neither
// "dirty" nor "force": the dirty mark is the running step's, and forcing it would corrupt the
// state under the migration.
func inProgress(h *pgdriver.Holder, st pgdriver.State) string {
	if !st.Dirty {
		// A schemahook step marked in the holder's application_name (see Runner.Status).
		return fmt.Sprintf("a migration is in progress (%s): the database stays at version %d until its step commits — wait for it to finish", h, st.Version)
	}
	return fmt.Sprintf("a migration is in progress (%s): version %d is marked as being migrated until its step ends — wait for it to finish", h, st.Version)
}

func dirtyError(v int, c *source.Catalog) error {
	name := ""
	if v >= 0 {
		if m := c.Lookup(uint(v)); m != nil {
			name = " (" + m.Up.Name + ")"
		}
	}
	return fmt.Errorf("%w at version %d%s: a migration that runs without a transaction stopped midway. "+
		"Inspect the database, finish or undo that migration's statements by hand, then run `schemahook force %d` (finished) "+
		"or `schemahook force <previous version>` (undone), and run the update again", ErrDirty, v, name, v)
}

func newerError(v int, head uint) error {
	return fmt.Errorf("%w: the database is at version %d but this release only knows migrations up to %d — "+
		"an older release must not run against a newer schema: deploy the newer release again, or restore the database from a backup "+
		"(or revert the schema deliberately to this release's: `schemahook update --allow-downgrade` or `schemahook guard --allow-downgrade` reverts "+
		"migrations %d..%d with the down SQL stored when they were applied; with the chart, config.allowDowngrade=true)", ErrDatabaseNewer, v, head, head+1, v)
}

// Check reports whether the database is at the catalog's head and clean: nil when it is;
// otherwise an error wrapping ErrNotCurrent (behind, empty, or a migration in progress),
// ErrDatabaseNewer or ErrDirty, with what to do — or, for a database at head whose applied
// migrations no longer match their files, ErrDrift: the schema is this release's, but update
// will refuse to migrate it until the drift is resolved, which the caller reports as a warning
// or a failure (`check --strict`). It reads the version row and the checksums in one query and
// never writes or locks.
func (r *Runner) Check(ctx context.Context) (err error) {
	s, err := r.open(ctx, 0)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	return r.checkOn(s)
}

// checkOn is Check on an open session.
func (r *Runner) checkOn(s *session) error {
	st, holder, err := r.readSettled(s, pgdriver.Checksums, false)
	if err != nil {
		return err
	}
	if holder != nil {
		return fmt.Errorf("%w: %s", ErrNotCurrent, inProgress(holder, st))
	}
	if err := r.current(st); err != nil {
		return err
	}
	if ds := r.drifts(st); len(ds) > 0 {
		return fmt.Errorf("%w: the schema is at this release's version %d, but applied migrations no longer match their files:\n  %s\n"+
			"update will refuse to migrate this database until the files are restored (e.g. from git); `schemahook status` shows the details",
			ErrDrift, st.Version, driftLines(ds))
	}
	return nil
}

func (r *Runner) current(st pgdriver.State) error {
	if err := r.refusal(st); err != nil {
		return err
	}
	head := r.catalog().Head().Version
	if st.Version == int(head) {
		return nil
	}
	pending := r.catalog().After(versionPtr(st.Version))
	names := make([]string, 0, 3)
	for i, m := range pending {
		if i == 3 {
			names = append(names, "…")
			break
		}
		names = append(names, m.Up.Name)
	}
	at := fmt.Sprintf("schema at %d", st.Version)
	if st.Version == pgdriver.NilVersion {
		at = "database has no schema yet"
	}
	return fmt.Errorf("%w: %s, this release needs %d (%d pending: %s) — run the release with config.updateSchema=true, or `schemahook update`",
		ErrNotCurrent, at, head, len(pending), strings.Join(names, ", "))
}

// CheckWait repeats Check until it returns nil, ErrDrift (the schema is at head) or
// ErrDatabaseNewer (the schema is past this release: waiting cannot change that), or wait has
// passed. Connection failures count as "not yet" too: the gate starts with the pods, possibly
// before the database. It returns nil once current, else the last reason wrapped with how long
// it waited.
func (r *Runner) CheckWait(ctx context.Context, wait time.Duration) error {
	deadline, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	var (
		logged string
		reason error // the last answer that was about the schema or the server, not our own deadline
		l      listener
	)
	defer l.close()
	for attempt := 0; ; attempt++ {
		err := l.check(r, deadline)
		if errors.Is(err, ErrDrift) {
			return err // at head: waiting would not change the files
		}
		if errors.Is(err, ErrDatabaseNewer) {
			// Terminal too: an older release never catches up with a newer schema by waiting, and
			// nothing but a deliberate downgrade (a sync of this release with config.allowDowngrade)
			// makes it older again. Refusing at once says so now, not after the whole --wait.
			return err
		}
		if err == nil {
			if attempt > 0 {
				r.o.log.Info("schema is current", "version", r.catalog().Head().Version, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		if errors.Is(err, dbconn.ErrAuth) || errors.Is(err, dbconn.ErrConfig) {
			return err // waiting cannot fix credentials or a malformed URL
		}
		// An attempt cut short by our own deadline (the dial times out at the same instant,
		// possibly before the context reports it) says nothing about the schema: keep the
		// previous reason, which is what the exit code and message must be about.
		if dl, _ := deadline.Deadline(); reason == nil || (deadline.Err() == nil && time.Until(dl) > 0) {
			reason = err
		}
		if msg := reason.Error(); msg != logged {
			r.o.log.Info("waiting for the schema", "reason", msg, "wait", wait.String())
			logged = msg
		}
		if l.start(r, deadline, err) {
			continue // listening now: check again at once, so that no commit since the check is missed
		}
		if l.wait(r, deadline, pollPolicy.Delay(attempt)) != nil || deadline.Err() != nil {
			if ctx.Err() != nil {
				return errors.Join(reason, ctx.Err())
			}
			return fmt.Errorf("still not ready after %s: %w", time.Since(start).Round(time.Second), reason)
		}
	}
}
