package bluegreen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// copyAndSwitch freezes the serving database, copies it to Target, migrates Target and records
// the switch. On any failure after the freeze it drops the partial copy and unfreezes the source.
func (e *Engine) copyAndSwitch(ctx context.Context, l *lineage, src Row) (time.Time, error) {
	if err := e.preflight(ctx, l, src); err != nil {
		return time.Time{}, err
	}
	if _, stale := l.rows[e.o.Target]; stale {
		// A copy of this name that does not serve and is not an ancestor: left by a switch back
		// (the writes made to it then were accepted as lost) or by a failed run.
		e.log.Warn("dropping a stale copy of the same name to copy again from the serving database", "database", e.o.Target, "serving", src.Name)
		if err := e.drop(ctx, l, e.o.Target); err != nil {
			return time.Time{}, err
		}
	}
	if err := l.insert(ctx, Row{Name: e.o.Target, Version: e.o.Version, Source: src.Name, State: stateCopying}); err != nil {
		return time.Time{}, err
	}
	undo := func(err error) (time.Time, error) {
		ctx := context.WithoutCancel(ctx)
		e.log.Warn("copy failed: dropping the partial copy and unfreezing the source, which keeps serving", "copy", e.o.Target, "source", src.Name)
		return time.Time{}, errors.Join(err, e.drop(ctx, l, e.o.Target), e.unfreeze(ctx, l, src.Name))
	}
	start := time.Now()
	if err := e.freeze(ctx, l, src.Name); err != nil {
		return undo(err)
	}
	// The source's counters once its writers are gone (their statistics are flushed on exit):
	// what the copy holds, for anyone who later asks whether the source changed after it.
	srcWrites, err := e.readCounters(ctx, src.Name)
	if err != nil {
		return undo(err)
	}
	copyPoint, err := e.createCopy(ctx, l, src.Name)
	if err != nil {
		return undo(err)
	}
	e.log.Info("copied the frozen database", "source", src.Name, "copy", e.o.Target, "method", string(e.o.Method),
		"duration", time.Since(copyPoint).Round(time.Millisecond).String())
	r := l.rows[e.o.Target]
	r.CopyPoint, r.SourceWrites = &copyPoint, srcWrites
	if err := l.insert(ctx, r); err != nil {
		return undo(err)
	}
	e.copyGrants(ctx, l.c, src.Name)
	if err := e.hooks.Migrate(ctx, e.o.Target); err != nil {
		return undo(err)
	}
	// The baseline of "writes since the switch": after the migration, which wrote to the copy.
	baseline, err := e.readCounters(ctx, e.o.Target)
	if err != nil {
		return undo(err)
	}
	if err := l.switchTo(ctx, src.Name, e.o.Target, baseline); err != nil {
		return undo(err)
	}
	e.log.Info("the copy serves: the source stays frozen (read-only) as the way back", "copy", e.o.Target, "source", src.Name,
		"frozen_for", time.Since(start).Round(time.Millisecond).String())
	return copyPoint, nil
}

// preflight refuses, before anything changes, what would fail later: an old server, a source
// this role does not own, a name taken by a database schemahook did not make, a schema the
// migrations would refuse, sessions on the source this role cannot end, the disk budget.
func (e *Engine) preflight(ctx context.Context, l *lineage, src Row) error {
	c := l.c
	var version int
	var owner, super, targetExists bool
	var srcSize int64
	err := c.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
			pg_has_role(current_user, d.datdba, 'USAGE'), r.rolsuper,
			EXISTS (SELECT FROM pg_database WHERE datname = $2), pg_database_size(d.oid)
		FROM pg_database d, pg_roles r WHERE d.datname = $1 AND r.rolname = current_user`, src.Name, e.o.Target).
		Scan(&version, &owner, &super, &targetExists, &srcSize)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: the serving database %q does not exist — create it (database.name) or fix the lineage in %q", ErrCannotCopy, src.Name, e.o.Lineage)
	}
	if err != nil {
		return fmt.Errorf("checking the copy of %q: %w", src.Name, err)
	}
	switch {
	case version < 150000:
		return fmt.Errorf("%w: the server is PostgreSQL %d.%d; the copy strategy needs 15 or later (CREATE DATABASE … STRATEGY) — use schemaUpdate.strategy=inPlace",
			ErrCannotCopy, version/10000, version%10000)
	case !owner && !super:
		return fmt.Errorf("%w: role %q does not own database %q, and only its owner may copy it with CREATE DATABASE … TEMPLATE and freeze it "+
			"(SQLSTATE 42501 otherwise) — ALTER DATABASE %s OWNER TO %s, or use schemaUpdate.strategy=inPlace (managed services that forbid TEMPLATE need inPlace)",
			ErrCannotCopy, e.cfg.User, src.Name, pgx.Identifier{src.Name}.Sanitize(), pgx.Identifier{e.cfg.User}.Sanitize())
	case targetExists && l.rows[e.o.Target].Name == "":
		return fmt.Errorf("%w: a database named %q exists and schemahook did not create it — drop or rename it, or change schemaUpdate.copy.nameTemplate",
			ErrCannotCopy, e.o.Target)
	case src.Version > e.o.Version:
		return fmt.Errorf("%w: the serving database %q is at version %d, newer than this release's %d, and %q is not a database it was copied from "+
			"(dropped by retention?) — switching back needs that database; restore it from a backup, or deploy the newer release again",
			ErrCannotCopy, src.Name, src.Version, e.o.Version, e.o.Target)
	}
	if err := e.checkDisk(ctx, l, srcSize); err != nil {
		return err
	}
	if err := e.checkSessions(ctx, c, src.Name); err != nil {
		return err
	}
	if e.hooks.Validate != nil {
		if err := e.hooks.Validate(ctx, src.Name); err != nil {
			return fmt.Errorf("the serving database %q cannot be migrated to version %d, so it is not copied: %w", src.Name, e.o.Version, err)
		}
	}
	return nil
}

// checkDisk refuses a copy that would take the copies past DiskBudget. PostgreSQL cannot say how
// much disk is free without superuser-only file functions, so the budget is the user's number;
// without one, the size needed is logged and the copy goes ahead (a full disk then fails the
// CREATE DATABASE, which removes its files, and the source is unfrozen).
func (e *Engine) checkDisk(ctx context.Context, l *lineage, need int64) error {
	var used int64
	var names []string
	for n := range l.rows {
		if n != e.o.Base && n != e.o.Target {
			names = append(names, n)
		}
	}
	if err := l.c.QueryRow(ctx, `SELECT coalesce(sum(pg_database_size(datname)), 0)::bigint FROM pg_database WHERE datname = ANY ($1)`, names).Scan(&used); err != nil {
		return fmt.Errorf("measuring the copies' disk use: %w", err)
	}
	if e.o.DiskBudget <= 0 {
		e.log.Info("copy size (no disk budget set: free space is not checked)", "copy_bytes", need, "copies_bytes", used)
		return nil
	}
	if used+need > e.o.DiskBudget {
		return fmt.Errorf("%w: the copy needs about %d bytes (the source's size; WAL_LOG also writes as much WAL until the next checkpoint) and the existing copies take %d, "+
			"together more than schemaUpdate.copy.diskBudget, %d bytes — lower schemaUpdate.copy.keep so that older copies are dropped, grow the volume and raise the budget, "+
			"or use schemaUpdate.strategy=inPlace", ErrCannotCopy, need, used, e.o.DiskBudget)
	}
	return nil
}

// sessionFilter selects the client sessions on database $1 other than this one. Without
// pg_read_all_stats, backend_type is NULL for other roles' sessions; a session with a role is a
// client's then (autovacuum workers have none, and CREATE DATABASE ends them itself).
const sessionFilter = `a.datname = $1 AND a.pid <> pg_backend_pid() AND
	(a.backend_type = 'client backend' OR a.backend_type IS NULL AND a.usesysid IS NOT NULL)`

// checkSessions refuses when database has sessions this role may not end: CREATE DATABASE …
// TEMPLATE would wait for them and fail (SQLSTATE 55006).
func (e *Engine) checkSessions(ctx context.Context, c *pgx.Conn, database string) error {
	rows, err := c.Query(ctx, `SELECT coalesce(a.usename, '?') || coalesce(' (' || nullif(a.application_name, '') || ')', ''), count(*)
		FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
		WHERE `+sessionFilter+` AND NOT (
			(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
			OR (NOT coalesce(r.rolsuper, false) AND (pg_has_role(current_user, a.usesysid, 'MEMBER') OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'))))
		GROUP BY 1 ORDER BY 1`, database)
	if err != nil {
		return fmt.Errorf("listing the sessions on %q: %w", database, err)
	}
	defer rows.Close() // also on a Scan error: the connection is used again after this
	var who []string
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		who = append(who, fmt.Sprintf("%s ×%d", name, n))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(who) > 0 {
		return fmt.Errorf("%w: database %q has sessions that role %q may not end (%s), and CREATE DATABASE … TEMPLATE needs no other session on its source — "+
			"GRANT pg_signal_backend TO %s, or stop those clients during the upgrade (schemaUpdate.stopWorkloads)",
			ErrCannotCopy, database, e.cfg.User, strings.Join(who, ", "), pgx.Identifier{e.cfg.User}.Sanitize())
	}
	return nil
}

// freeze makes database read-only for every new session and ends the existing ones, waiting for
// each to exit: from then on nothing writes to it (short of a session that turns read-only off
// itself, or a superuser's). Readers reconnect and read.
func (e *Engine) freeze(ctx context.Context, l *lineage, database string) error {
	if _, err := l.c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{database}.Sanitize()+" SET default_transaction_read_only = on"); err != nil {
		return fmt.Errorf("freezing %q (ALTER DATABASE … SET default_transaction_read_only): %w", database, err)
	}
	if r, ok := l.rows[database]; ok && !r.Frozen {
		r.Frozen = true
		if err := l.insert(ctx, r); err != nil {
			return err
		}
	}
	n, err := e.endSessions(ctx, l.c, database)
	e.log.Info("froze the database: read-only for new sessions, existing sessions ended", "database", database, "ended", n)
	return err
}

// unfreeze lets database's new sessions write again.
func (e *Engine) unfreeze(ctx context.Context, l *lineage, database string) error {
	if _, err := l.c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{database}.Sanitize()+" RESET default_transaction_read_only"); err != nil {
		return fmt.Errorf("unfreezing %q (ALTER DATABASE … RESET default_transaction_read_only): %w — run it by hand", database, err)
	}
	if r, ok := l.rows[database]; ok && r.Frozen {
		r.Frozen = false
		return l.insert(ctx, r)
	}
	return nil
}

// endSessions terminates the client sessions on database and waits up to 5 s for each to exit
// (pg_terminate_backend's timeout): an exiting backend flushes its statistics, so the write
// counters read afterwards are complete.
func (e *Engine) endSessions(ctx context.Context, c *pgx.Conn, database string) (int, error) {
	var n int
	err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid, 5000)) FROM pg_stat_activity a WHERE `+sessionFilter, database).Scan(&n)
	if err != nil {
		return n, fmt.Errorf("ending the sessions on %q: %w — GRANT pg_signal_backend to the migration role, or stop the clients (schemaUpdate.stopWorkloads)", database, err)
	}
	return n, nil
}

// createCopy runs CREATE DATABASE Target TEMPLATE src, which fails while any other session is
// connected to src (SQLSTATE 55006, after its own 5 s wait). Clients reconnect within
// milliseconds of having their session ended, so for the copy's duration src accepts no
// connection at all (ALLOW_CONNECTIONS false, restored whatever happens): the old release's
// readers get "database does not allow connections" errors for that long, then read the frozen
// source again. A session that slipped in is ended and the copy retried until SessionWait.
func (e *Engine) createCopy(ctx context.Context, l *lineage, src string) (at time.Time, err error) {
	if err := e.allowConnections(ctx, l.c, src, false); err != nil {
		return at, err
	}
	defer func() { err = errors.Join(err, e.allowConnections(context.WithoutCancel(ctx), l.c, src, true)) }()
	deadline := time.Now().Add(e.o.SessionWait)
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY %s", pgx.Identifier{e.o.Target}.Sanitize(), pgx.Identifier{src}.Sanitize(), strings.ToUpper(string(e.o.Method)))
	for attempt := 1; ; attempt++ {
		if _, err := e.endSessions(ctx, l.c, src); err != nil {
			return at, err
		}
		at = time.Now()
		_, err := l.c.Exec(ctx, sql)
		if err == nil {
			return at, nil
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "55006" || time.Now().After(deadline) {
			return at, fmt.Errorf("copying %q to %q (%s): %w%s", src, e.o.Target, sql, err, copyHint(pe))
		}
		e.log.Info("a session was still on the source at the copy: ending it and retrying", "source", src, "attempt", attempt)
		select {
		case <-ctx.Done():
			return at, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// allowConnections sets src's ALLOW_CONNECTIONS.
func (e *Engine) allowConnections(ctx context.Context, c *pgx.Conn, database string, allow bool) error {
	if _, err := c.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", pgx.Identifier{database}.Sanitize(), allow)); err != nil {
		return fmt.Errorf("setting ALLOW_CONNECTIONS %t on %q: %w", allow, database, err)
	}
	return nil
}

func copyHint(pe *pgconn.PgError) string {
	if pe == nil {
		return ""
	}
	switch pe.Code {
	case "55006":
		return " — clients kept reconnecting to the source; stop them during the upgrade (schemaUpdate.stopWorkloads)"
	case "53100":
		return " — the server's disk is full; PostgreSQL removed the partial copy. Free space, or set schemaUpdate.copy.diskBudget so that this is refused up front"
	case "42501":
		return " — the role lacks a privilege for CREATE DATABASE … TEMPLATE; a managed service may forbid it: use schemaUpdate.strategy=inPlace"
	}
	return ""
}

// copyGrants gives the copy the source's database-level privileges (CONNECT, CREATE, TEMP),
// which CREATE DATABASE does not copy: a read-only gate role granted CONNECT on the source must
// be able to connect to the copy. Failures are warnings (the owner's own access is unaffected).
// Database-level settings (ALTER DATABASE … SET) are not copied either; they are listed.
func (e *Engine) copyGrants(ctx context.Context, c *pgx.Conn, src string) {
	target := pgx.Identifier{e.o.Target}.Sanitize()
	var explicit bool // an ACL of its own; NULL means the default, which the copy has too
	err := c.QueryRow(ctx, `SELECT datacl IS NOT NULL FROM pg_database WHERE datname = $1`, src).Scan(&explicit)
	var stmts []string
	if err == nil && explicit {
		// The copy's default (PUBLIC may connect) would be wider than the source's own ACL.
		stmts = append(stmts, "REVOKE ALL ON DATABASE "+target+" FROM PUBLIC")
		var rows pgx.Rows
		rows, err = c.Query(ctx, `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.privilege_type
			FROM pg_database d, aclexplode(d.datacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
			WHERE d.datname = $1 AND a.grantee <> d.datdba`, src)
		if err == nil {
			for rows.Next() {
				var who, priv string
				if err = rows.Scan(&who, &priv); err != nil {
					break
				}
				stmts = append(stmts, fmt.Sprintf("GRANT %s ON DATABASE %s TO %s", priv, target, who))
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	for _, s := range stmts {
		if err != nil {
			break
		}
		_, err = c.Exec(ctx, s)
	}
	if err != nil {
		e.log.Warn("could not copy the source's database privileges to the copy: grant CONNECT on it to the roles that need it", "copy", e.o.Target, "error", err.Error())
	}
	var settings []string
	if err := c.QueryRow(ctx, `SELECT coalesce(array_agg(cfg), '{}') FROM pg_db_role_setting s, unnest(s.setconfig) cfg
		WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1) AND cfg NOT LIKE 'default_transaction_read_only=%'`, src).Scan(&settings); err == nil && len(settings) > 0 {
		e.log.Warn("the source has database-level settings, which CREATE DATABASE does not copy: set them on the copy if the application needs them",
			"copy", e.o.Target, "settings", strings.Join(settings, "; "))
	}
}

// drop removes database (ending its sessions) and its lineage row.
func (e *Engine) drop(ctx context.Context, l *lineage, database string) error {
	if _, err := l.c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{database}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping %q: %w", database, err)
	}
	return l.remove(ctx, database)
}
