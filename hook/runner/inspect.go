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

// drifts compares the history with the files. Only migrations at or below the current version
// count: a history row above it belongs to a newer release and is reported as "newer" instead.
func (r *Runner) drifts(st pgdriver.State) []Drift {
	var out []Drift
	for _, h := range st.History {
		if int(h.Version) > st.Version {
			continue
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
		return fmt.Errorf("%w, refusing to migrate:\n  %s\napplied migrations must not change: restore the original files (e.g. from git) and put new changes in a new migration (schemahook create NAME)",
			ErrDrift, strings.Join(lines, "\n  "))
	}
	return nil
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
		"(or revert the schema deliberately with a downgrade)", ErrDatabaseNewer, v, head)
}

// Check reports whether the database is at the catalog's head and clean: nil when it is;
// otherwise an error wrapping ErrNotCurrent (behind or empty), ErrDatabaseNewer or ErrDirty,
// with what to do. It reads two small rows and never writes or locks.
func (r *Runner) Check(ctx context.Context) (err error) {
	s, err := r.open(ctx, 0)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	st, err := s.drv.State(pgdriver.VersionOnly)
	if err != nil {
		return err
	}
	return r.current(st)
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

// CheckWait repeats Check until it returns nil or wait has passed. Connection failures count
// as "not yet" too: the gate starts with the pods, possibly before the database. It returns
// nil once current, else the last reason wrapped with how long it waited.
func (r *Runner) CheckWait(ctx context.Context, wait time.Duration) error {
	deadline, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	var (
		logged string
		reason error // the last answer that was about the schema or the server, not our own deadline
	)
	for attempt := 0; ; attempt++ {
		err := r.Check(deadline)
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
		if pollPolicy.Sleep(deadline, attempt) != nil || deadline.Err() != nil {
			if ctx.Err() != nil {
				return errors.Join(reason, ctx.Err())
			}
			return fmt.Errorf("still not ready after %s: %w", time.Since(start).Round(time.Second), reason)
		}
	}
}
