package bluegreen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Counters is a database's write fingerprint: per table, the rows inserted, updated and deleted
// since the statistics began (pg_stat_user_tables), and when they began. Per table, not the
// database total of pg_stat_database, because the total also counts catalog changes such as an
// autoanalyze writing pg_statistic, which would make every switch back look lossy; and because a
// per-table difference tells the user what would be lost.
//
// The counters are statistics: a backend reports its writes when its transaction ends, at most
// once a second, or when it goes idle within about 10 seconds (PostgreSQL ≥ 15), and always when
// it exits. So the engine ends a database's sessions before it measures for a decision; the gate,
// which cannot end sessions, may miss writes of the last seconds (see the README).
type Counters struct {
	Tables map[string][3]int64 `json:"tables"`
	Reset  *time.Time          `json:"reset,omitempty"` // pg_stat_database.stats_reset
}

// jsonb is c as a query parameter for a jsonb column (NULL for nil).
func (c *Counters) jsonb() *string {
	if c == nil {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // maps of strings to int arrays and a time always marshal
	}
	s := string(b)
	return &s
}

// readCounters reads database's counters, leaving out schemahook's own tables.
func (e *Engine) readCounters(ctx context.Context, database string) (cs *Counters, err error) {
	c, err := e.connect(ctx, database)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, c.Close(context.WithoutCancel(ctx))) }()
	cs = &Counters{Tables: map[string][3]int64{}}
	rows, err := c.Query(ctx, `SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables
		WHERE relname <> ALL ($1)`, []string{e.o.MigrationsTable, e.o.HistoryTable})
	if err != nil {
		return nil, fmt.Errorf("reading the write counters of %q: %w", database, err)
	}
	defer rows.Close() // also on a Scan error, before the next query on c
	for rows.Next() {
		var name string
		var n [3]int64
		if err := rows.Scan(&name, &n[0], &n[1], &n[2]); err != nil {
			return nil, err
		}
		cs.Tables[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the write counters of %q: %w", database, err)
	}
	if err := c.QueryRow(ctx, `SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()`).Scan(&cs.Reset); err != nil {
		return nil, fmt.Errorf("reading the statistics reset time of %q: %w", database, err)
	}
	return cs, nil
}

// Writes are the writes a database took since a baseline.
type Writes struct {
	Database string
	Since    *time.Time
	Tables   map[string][3]int64 // inserted, updated, deleted per table, only tables that changed
	// Unknown says why the writes cannot be counted (statistics reset, no baseline); then the
	// engine assumes there were some.
	Unknown string
}

// Lost reports whether w holds any write, or cannot tell.
func (w Writes) Lost() bool { return w.Unknown != "" || len(w.Tables) > 0 }

// String says what would be lost, per table, largest first.
func (w Writes) String() string {
	if w.Unknown != "" {
		return fmt.Sprintf("%s: %s", w.Database, w.Unknown)
	}
	names := make([]string, 0, len(w.Tables))
	var total int64
	for n, c := range w.Tables {
		names = append(names, n)
		total += c[0] + c[1] + c[2]
	}
	sum := func(n string) int64 { c := w.Tables[n]; return c[0] + c[1] + c[2] }
	sort.Slice(names, func(i, j int) bool {
		if sum(names[i]) != sum(names[j]) {
			return sum(names[i]) > sum(names[j])
		}
		return names[i] < names[j]
	})
	var parts []string
	for i, n := range names {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more table(s)", len(names)-5))
			break
		}
		c := w.Tables[n]
		parts = append(parts, fmt.Sprintf("%s (%d inserted, %d updated, %d deleted)", n, c[0], c[1], c[2]))
	}
	since := ""
	if w.Since != nil {
		since = " since " + w.Since.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s took %d row write(s)%s: %s", w.Database, total, since, strings.Join(parts, ", "))
}

// diff returns the writes now shows over base.
func diff(database string, since *time.Time, base, now *Counters) Writes {
	w := Writes{Database: database, Since: since, Tables: map[string][3]int64{}}
	if base == nil {
		w.Unknown = "no write counters were recorded when it started serving, so its writes cannot be counted"
		return w
	}
	if base.Reset != nil && (now.Reset == nil || now.Reset.After(*base.Reset)) || base.Reset == nil && now.Reset != nil {
		w.Unknown = "its statistics were reset (pg_stat_reset, or a server crash) since it started serving, so its writes cannot be counted"
		return w
	}
	for name, n := range now.Tables {
		b := base.Tables[name] // a table created since then starts at 0
		d := [3]int64{n[0] - b[0], n[1] - b[1], n[2] - b[2]}
		if d[0] < 0 || d[1] < 0 || d[2] < 0 {
			w.Unknown = fmt.Sprintf("the write counters of %s went down (statistics reset?), so its writes cannot be counted", name)
			return w
		}
		if d != [3]int64{} {
			w.Tables[name] = d
		}
	}
	// A table dropped since then is left out: dropping it was a migration's doing, not a write.
	return w
}

// lostWrites measures, for a switch back from serving to target, the writes made to each
// database between them since it started serving: serving itself and any copy in between.
func (e *Engine) lostWrites(ctx context.Context, l *lineage, serving Row, target string) ([]Writes, error) {
	var out []Writes
	for name := serving.Name; name != "" && name != target; name = l.rows[name].Source {
		r := l.rows[name]
		now, err := e.readCounters(ctx, name)
		if err != nil {
			return nil, err
		}
		if w := diff(name, r.ServingSince, r.SwitchWrites, now); w.Lost() {
			out = append(out, w)
		}
	}
	return out, nil
}

// writeLossError is the refusal of a switch back, saying what would be lost and what to do.
func writeLossError(from, to string, lost []Writes) error {
	parts := make([]string, len(lost))
	for i, w := range lost {
		parts[i] = w.String()
	}
	return fmt.Errorf("%w: switching back from %q to %q would lose what was written to the newer database since it started serving, "+
		"which is not in %q: %s — nothing was changed and %q keeps serving. Copy those rows over by hand first, or, to switch back "+
		"and lose them, set schemaUpdate.copy.acceptWriteLoss=true (--accept-write-loss)",
		ErrWriteLoss, from, to, to, strings.Join(parts, "; "), from)
}

// warnSourceWrites says so when the database serving was copied from took writes after the copy
// point: the freeze keeps ordinary sessions from writing, but a superuser, or a session that
// turned read-only off itself, can still write, and those rows are not in the copy. A warning on
// every hook run (every sync) rather than a refusal: the copy serves already, and the rows are
// still there to be moved by hand.
func (e *Engine) warnSourceWrites(ctx context.Context, l *lineage, serving Row) {
	src, ok := l.rows[serving.Source]
	if !ok || serving.SourceWrites == nil || src.Serving {
		return
	}
	now, err := e.readCounters(ctx, src.Name)
	if err != nil {
		return // dropped, or not readable: nothing to say
	}
	if w := diff(src.Name, serving.CopyPoint, serving.SourceWrites, now); w.Lost() {
		e.log.Warn("the frozen database the serving one was copied from took writes after the copy point; they are not in the serving database",
			"serving", serving.Name, "writes", w.String())
	}
}
