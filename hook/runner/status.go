package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
)

// Status is the full picture `schemahook status` prints. Current is nil for an empty database.
type Status struct {
	Database    string             `json:"database"` // where, without the password
	State       string             `json:"state"`    // current | pending | empty | dirty | migrating | newer | drift
	Message     string             `json:"message"`  // one line: what the state means and what to do
	Current     *int               `json:"current"`
	Dirty       bool               `json:"dirty"` // a migration stopped midway; false while one runs (state migrating)
	Head        uint               `json:"head"`
	Pending     []Ref              `json:"pending"`
	Applied     []pgdriver.Applied `json:"applied"`
	Drift       []Drift            `json:"drift"`
	Initialized bool               `json:"initialized"`
	InProgress  *InProgress        `json:"in_progress,omitempty"` // the migration a schemahook is running now (state migrating)
}

// InProgress is a migration another session is running: who, since when, which file. Every
// role sees these (from pg_locks and the session's application_name); what pg_stat_activity
// hides from other roles (client address, state) is in Message when visible.
type InProgress struct {
	PID       int       `json:"pid"`
	Role      string    `json:"role"`
	Reverting bool      `json:"reverting,omitempty"`
	Version   uint      `json:"version"`
	File      string    `json:"file,omitempty"` // empty when the version is not among these migrations
	Since     time.Time `json:"since"`
}

// Status reads the database and compares it with the catalog. It never writes or locks. It
// returns an error only when the database cannot be read; every schema problem is reported in
// the Status itself.
func (r *Runner) Status(ctx context.Context) (_ *Status, err error) {
	s, err := r.open(ctx, r.o.waitForDB)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	st, holder, err := r.readSettled(s, pgdriver.FullHistory, false)
	if err != nil {
		return nil, err
	}
	if holder == nil && st.Version != int(r.catalog().Head().Version) {
		// A transactional step leaves the version clean while it runs: its session's mark says.
		// Only a database behind (or ahead of) this release can have one running that matters
		// here, so a current one — every scrape of the exporter, mostly — is one read.
		if h, herr := s.drv.LockHolder(); herr == nil && h != nil && h.Step != nil {
			holder = h
		}
	}
	out := &Status{
		Database: dbconn.Describe(r.cfg), Dirty: st.Dirty, Head: r.catalog().Head().Version,
		Pending: refs(r.catalog().After(versionPtr(st.Version))), Applied: st.History,
		Drift: r.drifts(st), Initialized: st.Initialized,
	}
	if out.Applied == nil {
		out.Applied = []pgdriver.Applied{}
	}
	if out.Drift == nil {
		out.Drift = []Drift{}
	}
	if st.Version != pgdriver.NilVersion {
		v := st.Version
		out.Current = &v
	}
	verr := r.validate(st)
	switch {
	case holder != nil:
		// The dirty mark is the running step's: not a state for anyone to act on.
		out.State, out.Dirty, verr = "migrating", false, errors.New(inProgress(holder, st))
		if st := holder.Step; st != nil {
			out.InProgress = &InProgress{PID: holder.PID, Role: holder.Role, Reverting: st.Reverting, Version: st.Version, Since: st.Since}
			if m := r.catalog().Lookup(st.Version); m != nil {
				out.InProgress.File = m.Up.Name
				if down, _ := m.Down(); st.Reverting && down != nil {
					out.InProgress.File = down.Name
				}
			}
			verr = fmt.Errorf("%s; file %s", verr, cmp.Or(out.InProgress.File, "not among these migrations"))
		}
	case errors.Is(verr, ErrDirty):
		out.State = "dirty"
	case errors.Is(verr, ErrDatabaseNewer):
		out.State, out.Pending = "newer", []Ref{}
	case errors.Is(verr, ErrDrift):
		out.State = "drift"
	case st.Version == pgdriver.NilVersion:
		out.State = "empty"
	case len(out.Pending) > 0:
		out.State = "pending"
	default:
		out.State = "current"
	}
	if verr != nil {
		out.Message = verr.Error()
	} else if err := r.current(st); err != nil {
		out.Message = err.Error()
	} else {
		out.Message = fmt.Sprintf("schema is current at version %d", st.Version)
	}
	if out.State == "pending" {
		// Update refuses these before anything runs; say so before it is tried.
		if err := r.catalog().Runnable(r.catalog().After(versionPtr(st.Version))); err != nil {
			out.Message += "; update would refuse: " + err.Error()
		}
	}
	if holder == nil && verr == nil && r.adopting(st) {
		out.Message += "; migrations applied by another tool (golang-migrate) have no history row yet: the next update records them from their files"
	}
	return out, nil
}

// WriteTable renders s for people.
func (s *Status) WriteTable(w io.Writer) error {
	var b strings.Builder
	cur := "none"
	if s.Current != nil {
		cur = fmt.Sprint(*s.Current)
	}
	fmt.Fprintf(&b, "Database:  %s\nState:     %s\nVersion:   %s (head %d)%s\n", s.Database, s.State, cur, s.Head,
		map[bool]string{true: "  DIRTY", false: ""}[s.Dirty])
	fmt.Fprintf(&b, "           %s\n", s.Message)
	if len(s.Applied) > 0 {
		fmt.Fprintf(&b, "\nApplied:\n  %-8s %-32s %-20s %10s  %s\n", "VERSION", "NAME", "APPLIED AT", "DURATION", "BY")
		for _, a := range s.Applied {
			when := "-"
			if !a.AppliedAt.IsZero() {
				when = a.AppliedAt.UTC().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(&b, "  %-8d %-32s %-20s %8.1fms  %s\n", a.Version, a.Name, when, a.DurationMS, a.AppliedBy)
		}
	}
	if len(s.Pending) > 0 {
		fmt.Fprintf(&b, "\nPending:\n")
		for _, p := range s.Pending {
			fmt.Fprintf(&b, "  %-8d %s%s\n", p.Version, p.File, map[bool]string{true: "  (no transaction)", false: ""}[p.NoTransaction])
		}
	}
	if len(s.Drift) > 0 {
		fmt.Fprintf(&b, "\nDrift:\n")
		for _, d := range s.Drift {
			fmt.Fprintf(&b, "  %-8d %s: %s\n", d.Version, d.Name, d.Problem)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
