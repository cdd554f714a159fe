package pgdriver

// The rows that record a step, rendered with parameters or as literals.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// records returns the statements that record step p: golang-migrate's version row, and the
// history row of an up step or, for a down step, the removal of the rows above the new version.
//
// duration_ms is earlier plus the server's time on the step. For a step alone, earlier is the
// time the step took before these statements were sent, and the server's time runs from the
// arrival of the query carrying them (statement_timestamp() is that for every statement of a
// simple query): the whole migration's time on either path. In a group (chained), one query
// carries every step, so the server's time runs from the mark the previous step's history row
// left (markSQL; the group's prelude sets the first) to this history row — the step's file and
// its version rows — and earlier is only the step's share of the group's failed attempts; the
// row returns what it recorded for the log.
func (d *Driver) records(p *step, v *values, earlier time.Duration, chained bool) []statement {
	out := d.versionRows(p.to, false, v)
	if !p.up {
		return append(out, v.end(`DELETE FROM `+d.historyTable+` WHERE version > `+v.add(int64(p.to))))
	}
	m := p.mig
	var down *string
	downNoTx := false
	if p.down != nil {
		down, downNoTx = &p.down.SQL, p.down.NoTransaction
	}
	server, returning := "1000 * extract(epoch FROM clock_timestamp() - statement_timestamp())", ""
	if chained {
		server = "1000 * (extract(epoch FROM clock_timestamp()) - current_setting('schemahook.mark')::numeric)"
		returning = "\n\t\tRETURNING duration_ms, " + markSQL + " AS schemahook_mark"
	}
	return append(out, v.end(`INSERT INTO `+d.historyTable+` (version, name, checksum, down_sql, down_no_transaction, irreversible, applied_at, duration_ms, applied_by, retries)
		VALUES (`+v.list(int64(m.Version), m.Name, m.Checksum, down, downNoTx, m.Irreversible)+`, now(),
			`+v.add(float64(earlier.Microseconds())/1000)+` + `+server+`, `+v.list(d.opts.AppliedBy, p.retries)+`)
		ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, down_sql = EXCLUDED.down_sql,
			down_no_transaction = EXCLUDED.down_no_transaction, irreversible = EXCLUDED.irreversible, applied_at = EXCLUDED.applied_at,
			duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by, retries = EXCLUDED.retries`+returning))
}

// writeVersion replaces the version row outside any step transaction.
func (d *Driver) writeVersion(version int, dirty bool) error {
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	d.queueVersion(batch, version, dirty)
	batch.Queue("COMMIT")
	ctx := context.WithoutCancel(d.ctx) // recording what happened must survive a cancelled run
	if err := d.conn.SendBatch(ctx, batch).Close(); err != nil {
		return errors.Join(fmt.Errorf("writing version %d (dirty=%t): %w", version, dirty, err), d.rollback())
	}
	return nil
}

// queueVersion queues the version row, as versionRows writes it, with parameters.
func (d *Driver) queueVersion(b *pgx.Batch, version int, dirty bool) {
	for _, s := range d.versionRows(version, dirty, &values{}) {
		b.Queue(s.sql, s.args...)
	}
}

// versionRows returns golang-migrate's representation: one row, or none for NilVersion. DELETE
// rather than golang-migrate's TRUNCATE: readers (the app's schema gate) keep reading the old
// row under MVCC instead of queueing behind an ACCESS EXCLUSIVE lock until commit.
//
// A clean version is also announced on NotifyChannel: the server delivers a notification when
// the transaction that sent it commits, and never when it rolls back, so a gate that listens
// (check --wait) re-reads the version as soon as it is committed, not at its next poll. The
// notification rides in the statements that write the row: no round trip of its own.
func (d *Driver) versionRows(version int, dirty bool, v *values) []statement {
	out := []statement{v.end("DELETE FROM " + d.versionTable)}
	if version >= 0 || (version == NilVersion && dirty) {
		out = append(out, v.end("INSERT INTO "+d.versionTable+" (version, dirty) VALUES ("+v.list(int64(version), dirty)+")"))
	}
	if !dirty {
		out = append(out, v.end("SELECT pg_notify('"+NotifyChannel+"', "+v.add(strconv.Itoa(version))+")"))
	}
	return out
}

// NotifyChannel is the channel on which a committed clean version is announced; the payload is
// the version, "-1" for none.
const NotifyChannel = "schemahook"

// statement is one statement that records a step, with its parameters.
type statement struct {
	sql  string
	args []any
}

// values renders the values of the statements that record a step: as parameters ($1, $2, …),
// or, with pg set, as literals for the one-round-trip query, which travels in the simple
// protocol and so has no parameters. A string literal is the string with its quotes doubled,
// which is exact with standard_conforming_strings=on and UTF-8 — pgconn's EscapeString checks
// both and does just that; a string no query text can hold (NUL, invalid UTF-8) sets err.
type values struct {
	pg   *pgconn.PgConn
	args []any
	err  error
}

// add returns the placeholder or literal for x.
func (v *values) add(x any) string {
	if v.pg == nil {
		v.args = append(v.args, x)
		return "$" + strconv.Itoa(len(v.args))
	}
	switch x := x.(type) {
	case *string:
		if x == nil {
			return "NULL"
		}
		return v.add(*x)
	case string:
		s, err := v.pg.EscapeString(x)
		if err == nil && !queryText(x) {
			err = errors.New("the text cannot travel in a query")
		}
		v.fail(err)
		return "'" + s + "'"
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	v.fail(fmt.Errorf("no literal for %T", x))
	return "NULL"
}

func (v *values) fail(err error) {
	if v.err == nil {
		v.err = err
	}
}

// list returns add's results for xs, separated by commas.
func (v *values) list(xs ...any) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = v.add(x)
	}
	return strings.Join(out, ", ")
}

// end returns the statement sql with the parameters added since the previous one.
func (v *values) end(sql string) statement {
	s := statement{sql: sql, args: v.args}
	v.args = nil
	return s
}
