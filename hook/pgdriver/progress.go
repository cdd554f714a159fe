package pgdriver

// Progress while a migration runs: a line when its SQL is sent, a heartbeat while a statement
// runs long (saying whether it waits for a lock, and on whom), and a mark other sessions can
// read — the session's application_name names the step and when it started while it runs.
//
// application_name is the one thing about another session that pg_stat_activity shows every
// role, the gate's read-only one included (the query, its state and start are hidden from other
// roles), so `status` can say which file runs and since when from the lock holder's row. It is
// set with SET LOCAL in the queries that already carry the step — no round trip of its own —
// and goes back to the connection's own name when the transaction ends (a no-transaction file
// resets it after its last statement).

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultHeartbeat is how often a long-running statement is reported unless Options say otherwise.
const DefaultHeartbeat = 10 * time.Second

// announce logs that p's SQL is being sent, once per step.
func (d *Driver) announce(p *step) {
	if p.logged {
		return
	}
	p.logged = true
	d.log.Info(map[bool]string{true: "applying migration", false: "reverting migration"}[p.up], d.stepAttrs(p)...)
}

// announceGroup logs that a group is being sent: one query, one transaction.
func (d *Driver) announceGroup(g *group) {
	for _, p := range g.steps {
		p.logged = true
	}
	d.log.Info("applying migrations in one transaction", append(d.groupAttrs(g), "count", len(g.steps))...)
}

// stepAttrs names p in log lines.
func (d *Driver) stepAttrs(p *step) []any {
	return []any{"version", p.mig.Version, "name", p.mig.Name, "file", p.file.Name, "transaction", !p.file.NoTransaction}
}

// groupAttrs names a group in log lines: a group of one is its step.
func (d *Driver) groupAttrs(g *group) []any {
	if !g.many() {
		return d.stepAttrs(g.steps[0])
	}
	return []any{"migrations", g.span(), "first", g.steps[0].file.Name, "last", g.steps[len(g.steps)-1].file.Name}
}

// A step's mark is the session's own application_name followed by what it runs, e.g.
// "schemahook applying 9 since 2026-12-02T05:30:12Z": what matches the name by its first word,
// or records it in a migration's rows, still finds the tool. The server keeps 63 bytes of it:
// the name is shortened so that the step always fits.
const maxAppName = 63

// stepMarkSQL returns a statement that marks d's session as running p, with the server's clock;
// local limits it to the current transaction.
func (d *Driver) stepMarkSQL(p *step, local bool) string {
	verb, v := "applying", p.to
	if !p.up {
		verb, v = "reverting", p.from
	}
	suffix := fmt.Sprintf(" %s %d since ", verb, v)
	name := []rune(d.conn.Config().RuntimeParams["application_name"])
	for len(string(name))+len(suffix)+len("2006-01-02T15:04:05Z") > maxAppName && len(name) > 0 {
		name = name[:len(name)-1]
	}
	// An escape string means the same whatever standard_conforming_strings says.
	lit := "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(string(name)+suffix) + "'"
	return fmt.Sprintf(`SELECT set_config('application_name', %s || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), %t)`,
		lit, local)
}

// Step is what a session marked by a running schemahook is doing (see Holder).
type Step struct {
	Reverting bool      // a down migration; else an up one
	Version   uint      // the migration's version
	Since     time.Time // when its SQL was sent
}

// String says what the step is, e.g. `applying version 9 since 05:30:12 UTC (45s)`.
func (s Step) String() string {
	verb := map[bool]string{false: "applying", true: "reverting"}[s.Reverting]
	return fmt.Sprintf("%s version %d since %s (%s)", verb, s.Version, s.Since.UTC().Format("2006-01-02 15:04:05 UTC"),
		time.Since(s.Since).Round(time.Second))
}

// parseStepMark reads a step mark from an application_name: the session's own name and its
// step; ok is false for any other name.
func parseStepMark(app string) (name string, s Step, ok bool) {
	fields := strings.Fields(app)
	n := len(fields)
	if n < 4 || fields[n-2] != "since" || (fields[n-4] != "applying" && fields[n-4] != "reverting") {
		return app, s, false
	}
	v, err := strconv.ParseUint(fields[n-3], 10, 64)
	if err != nil {
		return app, s, false
	}
	since, err := time.Parse(time.RFC3339, fields[n-1])
	if err != nil {
		return app, s, false
	}
	name = strings.TrimSpace(strings.TrimSuffix(app, strings.Join(fields[n-4:], " ")))
	return name, Step{Reverting: fields[n-4] == "reverting", Version: uint(v), Since: since}, true
}

// heartbeat reports, every Options.Heartbeat until stop is closed, that the attempt started at
// start still runs, and what it waits on: the watcher connection (opened at the first beat if
// no lock timeout has opened it yet) asks pg_blocking_pids. It returns when it has stopped.
func (r *lockRetry) heartbeat(start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(r.d.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		if r.side == nil && r.sideErr == nil {
			r.open()
		}
		opened, sideErr := r.side != nil, r.sideErr
		r.mu.Unlock()
		attrs := append(append([]any{}, r.what...), "running_for", time.Since(start).Round(time.Second).String())
		var (
			c   *contention
			err error
		)
		if opened {
			c, err = r.blocked()
		}
		switch {
		case c != nil:
			attrs = append(attrs, "status", "waiting for a lock", "lock", c.target, "blocked_by", c.String())
		case err != nil:
			attrs = append(attrs, "status", "running (whether it waits for a lock could not be seen: "+err.Error()+")")
		case !opened:
			attrs = append(attrs, "status", "running (whether it waits for a lock could not be seen: "+sideErr.Error()+")")
		default:
			attrs = append(attrs, "status", "running")
		}
		r.d.log.Info("still running", attrs...)
	}
}
