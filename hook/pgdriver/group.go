package pgdriver

// Sending migrations as one query: a group of steps — one, or on an initial install and a
// grouped upgrade every transactional step up to the next no-transaction one — travels with
// its rows and COMMIT.

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/schemahook/schemahook/hook/source"
	"github.com/schemahook/schemahook/hook/sqlsplit"
)

// group is a run of transactional up steps of an initial install or an upgrade that commit
// as one transaction, in one query sent when the run ends (flush).
type group struct {
	from    int  // the version before the group
	initial bool // it belongs to an initial install (Initialize)
	steps   []*step
}

// many reports whether the group holds more than one step: a group of one is sent, logged
// and reported as an ordinary step.
func (g *group) many() bool { return len(g.steps) > 1 }

// span names the group's migrations in messages.
func (g *group) span() string {
	return fmt.Sprintf("migrations %d–%d", g.steps[0].to, g.steps[len(g.steps)-1].to)
}

// why says why a group's migrations run as one transaction, for messages.
func (g *group) why() string {
	if g.initial {
		return "they run as one transaction when an empty database is initialized"
	}
	return "an update commits its pending migrations all or nothing"
}

// rolledBack says what a failed group left behind, for messages.
func (g *group) rolledBack() string {
	return fmt.Sprintf("nothing of %s was applied (%s): "+
		"the database is still at %s, clean; fix the cause and run the update again", g.span(), g.why(), versionName(g.from))
}

// joins reports whether step p can join a group: an up step whose file
// can travel in one query with its rows (oneTrip) and whose rows can be written as literals.
func (d *Driver) joins(p *step) bool {
	if !p.up || p.file.NoTransaction || !d.oneTrip(p.file.SQL) {
		return false
	}
	v := &values{pg: d.conn.PgConn()}
	d.records(p, v, 0, true)
	return v.err == nil
}

// Groupable reports whether Initialize and Upgrade would commit m together with its neighbours: m's up
// file runs in a transaction and can travel in one query with its version and history rows.
// Read the catalog's down files first (Catalog.ReadDowns): the history row holds m's.
func (d *Driver) Groupable(m *source.Migration) bool {
	down, _ := m.Down()
	return d.joins(&step{to: int(m.Version), mig: m, file: &m.Up, down: down, up: true})
}

// flush sends the open group, if any, and ends it.
func (d *Driver) flush() error {
	g := d.group
	d.group = nil
	if g == nil {
		return nil
	}
	if !g.many() {
		p := g.steps[0]
		p.group = nil
		return d.finish(p)
	}
	if _, err := d.runDeferred(g); err != nil {
		d.cur = g.from
		return err
	}
	return nil
}

// oneTrip reports whether a transactional file can be sent in one query with its rows and
// COMMIT (runDeferred). What follows the file must be read as new tokens, so it must not end
// inside a quote or a block comment. It must not start or end the transaction itself: on the
// two-round-trip path the transaction status after the file shows that before anything is
// recorded, while in one query the rows would already be written in whatever transaction
// follows. The catalog refuses such files already; the driver does not rely on it.
// Literals need standard_conforming_strings=on and UTF-8, which EscapeString checks.
func (d *Driver) oneTrip(sql string) bool {
	if _, err := d.conn.PgConn().EscapeString(""); err != nil || !queryText(sql) || sqlsplit.Unterminated(sql) {
		return false
	}
	for st := range sqlsplit.Statements(sql) {
		if sqlsplit.TransactionControl(st.SQL) {
			return false
		}
	}
	return true
}

// queryText reports whether a query string can hold s: the protocol ends strings at a NUL
// byte, and the server rejects invalid UTF-8 before parsing anything.
func queryText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// runDeferred runs deferred steps in one round trip per attempt: BEGIN and the SET LOCALs,
// then each step's file and rows, and COMMIT, in one simple-protocol query, retried whole on
// lock timeouts like runTransaction. A single step is one migration's transaction; several are
// a group, all or nothing. It returns done=false, having sent nothing that
// ran, when a single step must take the two-round-trip path after all.
//
// The server parses the whole string before running any of it and stops at the first error,
// so a failing file runs nothing after it — no rows, no COMMIT — and the aborted transaction
// is rolled back. Where the error lies — by its position, or else by the statements completed
// before it (locate) — tells which file failed (a *MigrationError with that file's line, as on
// the other path) from an error in recording a step (its rows, or the COMMIT: a deferred
// constraint).
func (d *Driver) runDeferred(g *group) (done bool, err error) {
	prelude := "BEGIN; " + d.timeouts("SET LOCAL ", d.opts.LockTimeout) + d.stepMarkSQL(g.steps[0], true) + "; "
	if g.many() {
		prelude += "SELECT " + markSQL + "; " // where the first step's time starts (records)
	}
	nPrelude := strings.Count(prelude, ";")
	size := len(prelude) + len("COMMIT")
	for _, p := range g.steps {
		size += len(p.file.SQL) + 1024
		if p.down != nil {
			size += len(p.down.SQL) + len(p.down.SQL)/8 // room for doubled quotes
		}
	}
	if g.many() {
		d.announceGroup(g)
	} else {
		d.announce(g.steps[0])
	}
	retry := d.newLockRetry()
	retry.what = d.groupAttrs(g)
	defer retry.close()
	for {
		start := time.Now()
		v := &values{pg: d.conn.PgConn()}
		var b strings.Builder
		b.Grow(size)
		b.WriteString(prelude)
		// bounds ends the query's parts: the prelude, then each step's file and its rows; the
		// COMMIT follows the last.
		bounds := make([]int, 0, 2*len(g.steps)+1)
		bounds = append(bounds, b.Len())
		for _, p := range g.steps {
			b.WriteString(p.file.SQL)
			bounds = append(bounds, b.Len())
			// The newline ends a trailing "--" comment, the semicolon the file's last statement.
			b.WriteString("\n;\n")
			earlier := time.Since(p.started)
			if g.many() {
				earlier = p.waited
			}
			for _, s := range d.records(p, v, earlier, g.many()) {
				b.WriteString(s.sql)
				b.WriteString(";\n")
			}
			if i := slices.Index(g.steps, p); i+1 < len(g.steps) {
				b.WriteString(d.stepMarkSQL(g.steps[i+1], true) + ";\n")
			}
			bounds = append(bounds, b.Len())
		}
		b.WriteString("COMMIT")
		if v.err != nil {
			if g.many() { // begin let in only steps whose rows have literals (joins)
				return true, fmt.Errorf("recording %s: %w", g.span(), v.err)
			}
			return false, nil
		}
		query := b.String()
		var results []*pgconn.Result
		retry.watched(func() { results, err = d.conn.PgConn().Exec(d.ctx, query).ReadAll() })
		if err == nil {
			return true, d.committed(g, results)
		}
		completed := 0
		for _, r := range results {
			if r.Err == nil {
				completed++
			}
		}
		var pgErr *pgconn.PgError
		answered := errors.As(err, &pgErr)
		// Without an answer there is nothing to locate: the last step stands for the query.
		part, i, inFile := len(bounds), len(g.steps)-1, true
		if answered {
			part = locate(query, bounds, completed, pgErr)
			// Files are the odd parts; the prelude (part 0) counts as the first file's, as on
			// the other path. The COMMIT (part len(bounds)) belongs to the last step.
			i, inFile = min(max(part-1, 0)/2, len(g.steps)-1), part < len(bounds) && (part%2 == 1 || part == 0)
		}
		p := g.steps[i]
		fail := func(completed int) *MigrationError {
			e := d.failure(p, query[:bounds[2*i+1]], -bounds[2*i], completed, err, false)
			if g.many() {
				e.group = g
			}
			return e
		}
		if answered && completed == 0 && !inFile {
			// A syntax error after a file, where only our own SQL is: the file's last statement
			// is unfinished. Nothing ran. The other path reports it for a single step; in a
			// group, the error's position is mapped to the file's end.
			if !g.many() {
				return false, nil
			}
			e := fail(nPrelude)
			e.note = "the file's last statement is unfinished"
			return true, e
		}
		// A failing COMMIT ends the transaction too; only a statement before it tells.
		if d.endedBefore(completed, err) && part < len(bounds) {
			return true, d.endedItself(p, err)
		}
		rbErr := d.rollback()
		switch {
		case answered && d.ctx.Err() != nil:
			// Cancelled on the server (the deadline, SIGTERM): it answered, so nothing committed.
			return true, errors.Join(fail(max(completed, nPrelude)), rbErr)
		case !answered && !pgconn.SafeToRetry(err):
			// The query was sent, with its COMMIT, and no answer came: the server may have
			// committed it before the connection failed.
			e := fail(0)
			e.Unknown = true
			return true, errors.Join(e, rbErr)
		case !inFile && !retryable(err) && g.many():
			what := fmt.Sprintf("recording version %d", p.to)
			if part == len(bounds) { // the COMMIT is the whole group's
				what = "committing " + g.span()
			}
			return true, errors.Join(fmt.Errorf("%s: %w — %s", what, err, g.rolledBack()), rbErr)
		case !inFile && !retryable(err):
			return true, errors.Join(fmt.Errorf("recording version %d: %w", p.to, err), rbErr)
		case rbErr != nil || !retryable(err):
			return true, errors.Join(fail(max(completed, nPrelude)), rbErr)
		}
		if !retry.again(p, err) {
			return true, fail(max(completed, nPrelude))
		}
		p.waited += time.Since(start)
	}
}

// locate finds the part of query in which pgErr, raised after completed statements succeeded,
// lies: query[:bounds[0]] is part 0, query[bounds[k-1]:bounds[k]] part k, and what follows the
// last bound part len(bounds). By the error's position when it has one, else by counting
// statements: sqlsplit splits as the server does, and the server drops empty statements.
func locate(query string, bounds []int, completed int, pgErr *pgconn.PgError) int {
	if pgErr.Position > 0 {
		return sort.SearchInts(bounds, byteOffset(query, int(pgErr.Position))+1)
	}
	n, start := 0, 0
	for part, end := range bounds {
		n += len(sqlsplit.Split(query[start:end]))
		if completed < n {
			return part
		}
		start = end
	}
	return len(bounds)
}

// committed checks that a one-round-trip query ended with its own COMMIT and logs its steps.
func (d *Driver) committed(g *group, results []*pgconn.Result) error {
	tag := ""
	if len(results) > 0 {
		tag = results[len(results)-1].CommandTag.String()
	}
	if status := d.conn.PgConn().TxStatus(); status != 'I' || tag != "COMMIT" {
		what := g.steps[0].file.Name
		if g.many() {
			what = g.span()
		}
		return errors.Join(fmt.Errorf("recording version %d: the server did not confirm the COMMIT of %s (last command %q, transaction status %q): "+
			"it was rolled back or its state is unknown — `schemahook status` shows the version", g.steps[len(g.steps)-1].to, what, tag, status), d.rollback())
	}
	if g.many() {
		// Each step's history row returned the duration it recorded (records).
		i := 0
		for _, r := range results {
			if len(r.FieldDescriptions) == 2 && r.FieldDescriptions[1].Name == "schemahook_mark" && len(r.Rows) == 1 && i < len(g.steps) {
				ms, _ := strconv.ParseFloat(string(r.Rows[0][0]), 64)
				g.steps[i].took = time.Duration(ms * float64(time.Millisecond))
				i++
			}
		}
	}
	for _, p := range g.steps {
		d.logDone(p)
	}
	return nil
}
