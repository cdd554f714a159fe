package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/schemahook/schemahook/hook/pgdriver"
)

// Plan writes to w the SQL that Update would execute now, in order, with the transaction
// framing and timeouts it would use (one transaction per run of consecutive transactional
// migrations, or per migration with pgdriver.Options.CommitEach on an upgrade). It changes nothing and takes no lock, except to wait, as Update
// would, for a migration in progress (a dirty version while another session holds the lock).
// When Update would refuse (dirty, newer, drift) Plan writes nothing and returns the same error;
// when nothing is pending it writes a comment saying so and returns nil.
func (r *Runner) Plan(ctx context.Context, w io.Writer) (err error) {
	s, err := r.open(ctx, r.o.waitForDB)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	st, _, err := r.readSettled(s, pgdriver.Checksums, true)
	if err != nil {
		return err
	}
	if err := r.validate(st); err != nil {
		return err
	}
	d := r.o.driver
	if d.LockTimeout == 0 {
		d.LockTimeout = pgdriver.DefaultLockTimeout
	}
	pending := r.catalog().After(versionPtr(st.Version))
	var b strings.Builder
	fmt.Fprintf(&b, "-- schemahook plan for %s\n", s.conn.Config().Database)
	if len(pending) == 0 {
		fmt.Fprintf(&b, "-- schema is current at version %d: nothing to do\n", st.Version)
		_, err := io.WriteString(w, b.String())
		return err
	}
	if err := r.catalog().ReadDowns(); err != nil {
		return err // as Update would
	}
	if err := r.catalog().Runnable(pending); err != nil {
		return err // as Update would
	}
	from := "an empty database"
	if st.Version != pgdriver.NilVersion {
		from = fmt.Sprintf("version %d", st.Version)
	}
	fmt.Fprintf(&b, "-- from %s to %d: %d migration(s)\n", from, r.catalog().Head().Version, len(pending))
	if !st.Initialized || !st.HasHistory {
		fmt.Fprintf(&b, "-- first, the version and history tables are created (schema_migrations, schemahook_history)\n")
	}
	// Consecutive transactional migrations run in one transaction (Update, pgdriver.Driver.Upgrade
	// and Initialize), unless an upgrade commits each on its own; grouped says which those are.
	grouped := make([]bool, len(pending))
	switch {
	case st.Version == pgdriver.NilVersion:
		fmt.Fprintf(&b, "-- the database is empty: consecutive transactional migrations run as ONE transaction, split at no-transaction migrations; a failure rolls back the whole transaction\n")
	case r.o.driver.CommitEach:
		fmt.Fprintf(&b, "-- each migration commits in its own transaction (--commit migration): a failure leaves the migrations before it applied\n")
	default:
		fmt.Fprintf(&b, "-- the pending migrations commit all or nothing: consecutive transactional migrations run as ONE transaction, split at no-transaction migrations; a failure rolls back the whole transaction\n")
	}
	if st.Version == pgdriver.NilVersion || !r.o.driver.CommitEach {
		for i, m := range pending {
			grouped[i] = s.drv.Groupable(m)
		}
	}
	for i, m := range pending {
		fmt.Fprintf(&b, "\n-- ===== %s =====\n", m.Up.Name)
		if m.Up.NoTransaction {
			fmt.Fprintf(&b, "-- no transaction: version %d is marked dirty first; each statement runs on its own with lock_timeout %s (none for CONCURRENTLY), retried on SQLSTATE 55P03\n",
				m.Version, d.LockTimeout)
			fmt.Fprintf(&b, "%s\n", strings.TrimRight(m.Up.SQL, "\n"))
			fmt.Fprintf(&b, "-- then version %d is recorded clean with its history row\n", m.Version)
			continue
		}
		first := !grouped[i] || i == 0 || !grouped[i-1]
		last := !grouped[i] || i == len(pending)-1 || !grouped[i+1]
		if first {
			if grouped[i] && !last {
				n := 1
				for i+n < len(pending) && grouped[i+n] {
					n++
				}
				fmt.Fprintf(&b, "-- migrations %d–%d run in this one transaction\n", m.Version, pending[i+n-1].Version)
			}
			fmt.Fprintf(&b, "BEGIN;\nSET LOCAL lock_timeout = '%s';\n", d.LockTimeout)
			if d.StatementTimeout > 0 {
				fmt.Fprintf(&b, "SET LOCAL statement_timeout = '%s';\n", d.StatementTimeout)
			}
		}
		fmt.Fprintf(&b, "%s\n", strings.TrimRight(m.Up.SQL, "\n"))
		fmt.Fprintf(&b, "-- version %d and its history row are written here, in the same transaction\n", m.Version)
		if last {
			fmt.Fprintf(&b, "COMMIT; -- on SQLSTATE 55P03 the whole transaction is rolled back and retried\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}
