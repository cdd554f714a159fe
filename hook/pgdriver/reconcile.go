package pgdriver

// The history next to golang-migrate: a trigger on the version table keeps the history from
// outliving migrations that golang-migrate reverts.

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// reconcilerSuffix ends the names of the trigger and its function. A change to what the
// function does needs a new suffix: EnsureReconciler looks for the trigger by name only.
const reconcilerSuffix = "_forget_reverted"

// reconcilerName is the name of the version table's forget-reverted trigger and of its
// function: the history table's name and a suffix, so that two schemahook installs in one
// schema (--history-table) keep theirs apart. A name too long for an identifier (63 bytes) is
// shortened, on a character boundary, with a hash of the whole name.
func (d *Driver) reconcilerName() string {
	name := d.opts.HistoryTable + reconcilerSuffix
	if len(name) <= 63 {
		return name
	}
	tag := fmt.Sprintf("_%08x", crc32.ChecksumIEEE([]byte(d.opts.HistoryTable)))
	keep := 63 - len(tag) - len(reconcilerSuffix)
	prefix := d.opts.HistoryTable[:keep]
	for !utf8.ValidString(prefix) {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + tag + reconcilerSuffix
}

// EnsureReconciler has the last Unlock give the version table, if it has none yet, a trigger
// that forgets reverted migrations: when another tool writes a clean version row —
// golang-migrate, which writes the target version after every step, up or down, and for
// `force` — the history rows above that version are deleted.
// golang-migrate knows nothing of the history, so without it, after `migrate down 1` the history
// would still hold the reverted migration, and after "down 1, edit the file, up" it would hold
// the old file's checksum and report the new one as drift. With it, the history holds no row for
// a migration golang-migrate re-applied, and the next update records the file as applied, as it
// does for any migration golang-migrate applied (Adopt).
//
// Design:
//   - The trigger fires for every writer, schemahook included, without a marker telling
//     schemahook's writes apart: each clean version row schemahook writes is already one above
//     which no migration is applied (a down step deletes the rows above it in the same
//     transaction, Force too), so the trigger does what schemahook does, and schemahook's
//     queries stay as they are — no statement more on the no-op path or in the one query of an
//     initial install.
//   - Dirty rows are left alone (WHEN NOT NEW.dirty): a step that fails leaves its version
//     dirty and the history as it was, so a no-transaction down that stops midway keeps the down
//     SQL stored for it (an older release has no file to take it from), and `force` decides.
//     golang-migrate commits every step's clean row right after its dirty one, so nothing else
//     is missed. The exception is a down step to no version: golang-migrate writes the dirty
//     mark (-1, dirty) and then only TRUNCATEs, which fires no row trigger, so the -1 mark counts.
//   - golang-migrate's SetVersion is TRUNCATE and INSERT in one transaction: the trigger runs
//     after the INSERT, in that transaction, so a failure would fail `migrate` itself. It
//     therefore does nothing when the history table is gone, and it is SECURITY DEFINER with a
//     fixed search_path, so that a migrate CLI running as a role without rights on the history
//     table is not refused.
//   - The function and the trigger are created under the migration lock, after an update that
//     took the lock succeeded, in the query that releases the lock (Unlock): no round trip more,
//     never on the no-op path (which takes no lock and stays one query), and not before an
//     initial install, whose hundreds of version rows (one query, docs/benchmarks.md P2) would
//     each run it for nothing. A database whose tables another role owns may refuse them: that
//     is logged and the lock released as usual; history rows above the version are still
//     forgotten under the lock (State.Reverted, ForgetReverted).
//
// Call it under the migration lock, with both tables in place.
func (d *Driver) EnsureReconciler() {
	d.reconciler.wanted = true
}

// reconciler is what the driver knows of the version table's forget-reverted trigger.
type reconciler struct {
	exists             bool   // the trigger exists (identify), or was created
	wanted             bool   // EnsureReconciler was called
	schema             string // the version table's schema, quoted (identify)
	versionQ, historyQ string // the tables' schema-qualified names (identify)
}

// createReconciler sends the trigger's creation followed by unlock, the query that releases the
// migration lock, and reports whether both succeeded. When the creation fails, it logs why and
// rolls back, and the caller releases the lock.
func (d *Driver) createReconciler(ctx context.Context, unlock string) bool {
	sql, err := d.reconcilerSQL()
	if err == nil {
		_, err = d.conn.PgConn().Exec(ctx, sql+";\n"+unlock).ReadAll()
		if err == nil {
			d.reconciler.exists = true
			return true
		}
		if rbErr := d.rollback(); rbErr != nil {
			err = errors.Join(err, rbErr)
		}
	}
	d.log.Warn("could not create the trigger that keeps the history in step with golang-migrate: "+
		"a migration it reverts and applies again from a changed file will read as drift", "trigger", d.reconcilerName(),
		"table", d.reconciler.versionQ, "error", err.Error())
	return false
}

// reconcilerSQL is the transaction that creates the trigger and its function. It has no string
// literals, only dollar quotes, whose meaning does not depend on standard_conforming_strings.
func (d *Driver) reconcilerSQL() (string, error) {
	r := d.reconciler
	name := d.reconcilerName()
	fn := r.schema + "." + pgx.Identifier{name}.Sanitize()
	const tag, text = "$schemahook_forget_reverted$", "$schemahook_text$"
	body := `
BEGIN
	-- schemahook: a clean version row written by golang-migrate (or anyone) means that no
	-- migration above it is applied: forget their history rows. See pgdriver.EnsureReconciler.
	IF to_regclass(` + text + r.historyQ + text + `) IS NOT NULL THEN
		DELETE FROM ` + r.historyQ + ` WHERE version > NEW.version;
	END IF;
	RETURN NULL;
END
`
	comment := "schemahook: forgets the history (" + r.historyQ + ") of migrations reverted by another tool, such as the migrate CLI"
	if names := r.schema + r.versionQ + r.historyQ; strings.Contains(names, tag) || strings.Contains(names, text) {
		return "", fmt.Errorf("the table names %s and %s contain the trigger's dollar quotes", r.versionQ, r.historyQ)
	}
	return "BEGIN; " + d.timeouts("SET LOCAL ", d.opts.LockTimeout) + `
CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ` + tag + body + tag + `;
COMMENT ON FUNCTION ` + fn + `() IS ` + text + comment + text + `;
CREATE TRIGGER ` + pgx.Identifier{name}.Sanitize() + ` AFTER INSERT ON ` + r.versionQ + `
	FOR EACH ROW WHEN (NOT NEW.dirty OR NEW.version < 0) EXECUTE PROCEDURE ` + fn + `();
COMMIT`, nil
}
