package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/version"
)

func (a *app) updateCommand() *cobra.Command {
	var (
		mf             migrationFlags
		sf             stopFlags
		cf             copyFlags
		allowDowngrade bool
		commit         string
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Initialize an empty database or apply pending migrations (what the hook Job runs)",
		Long: `update waits for the database, takes the migration lock, refuses a dirty, drifted or newer
database, then applies the pending migrations, each together with its version row. By default
(--commit release) they commit all or nothing: consecutive transactional migrations run in one
transaction, split only at no-transaction ones, so a failed upgrade leaves the database at the
version the previous release runs on and a failed first install leaves it empty — what Helm's
--atomic / --rollback-on-failure rollback expects. --commit migration commits each migration on
its own, so that none holds its locks until the others finish (an empty database is still
initialized all or nothing). When the schema is
already current it changes nothing and exits 0 after one read, without waiting for the migration
lock, so it is safe to run on every deploy and every Argo CD sync.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			each, err := commitEach(commit)
			if err != nil {
				return err
			}
			mf.d.CommitEach = each
			r, ctx, cancel, err := mf.runner(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer cancel()
			copying, err := cf.enabled()
			if err != nil {
				return err
			}
			if copying {
				return cf.activate(ctx, a, &mf, &sf)
			}
			_, err = sf.update(ctx, a, r)
			if errors.Is(err, runner.ErrDatabaseNewer) && allowDowngrade {
				a.log.Warn("the database is newer than this release and downgrades are allowed: reverting with stored down migrations")
				_, err = r.Downgrade(ctx)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "when the database is newer than this release, revert it with the down SQL stored in its history instead of refusing")
	commitFlag(cmd, &commit)
	mf.register(cmd)
	sf.register(cmd)
	cf.register(cmd)
	return cmd
}

// commitFlag registers --commit, the transaction scope of an upgrade (update, plan).
func commitFlag(cmd *cobra.Command, commit *string) {
	cmd.Flags().StringVar(commit, "commit", "release", "how an upgrade commits: release (the pending migrations all or nothing, split only at no-transaction files) or migration (each in its own transaction)")
}

// commitEach reads --commit: whether an upgrade commits each migration on its own.
func commitEach(commit string) (bool, error) {
	switch commit {
	case "release":
		return false, nil
	case "migration":
		return true, nil
	}
	return false, usagef("--commit %q: use release (the pending migrations all or nothing) or migration (each in its own transaction)", commit)
}

// migrationFlags are the settings of every command that runs migration SQL (update, guard
// with --allow-downgrade), so the chart configures both Jobs the same way.
type migrationFlags struct {
	d                pgdriver.Options
	waitForDB, total time.Duration
}

func (m *migrationFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	waitForDBFlag(f, &m.waitForDB)
	f.DurationVar(&m.d.LockTimeout, "lock-timeout", pgdriver.DefaultLockTimeout, "lock_timeout of each attempt; a migration that cannot get its locks in time is rolled back and retried")
	f.DurationVar(&m.d.StatementTimeout, "statement-timeout", 0, "statement_timeout for migrations (0: the server's setting)")
	f.DurationVar(&m.d.LockWait, "lock-wait", time.Minute, "how long to wait for another schemahook, or golang-migrate, holding the migration lock")
	f.DurationVar(&m.total, "timeout", 5*time.Minute, "deadline for the whole run, retries included (0: none)")
}

// runner validates the flags and returns a runner and a context bounded by --timeout.
func (m *migrationFlags) runner(ctx context.Context, a *app) (*runner.Runner, context.Context, context.CancelFunc, error) {
	for name, v := range map[string]time.Duration{"wait-for-db": m.waitForDB, "timeout": m.total, "lock-wait": m.d.LockWait, "statement-timeout": m.d.StatementTimeout} {
		if err := nonNegative(name, v); err != nil {
			return nil, nil, nil, err
		}
	}
	if m.d.LockTimeout <= 0 {
		return nil, nil, nil, usagef("--lock-timeout %s: must be positive (it bounds how long a migration may block other queries)", m.d.LockTimeout)
	}
	r, err := a.runner(m.d, m.waitForDB)
	if err != nil {
		return nil, nil, nil, err
	}
	cancel := context.CancelFunc(func() {})
	if m.total > 0 {
		ctx, cancel = context.WithTimeout(ctx, m.total)
	}
	return r, ctx, cancel, nil
}

func (a *app) guardCommand() *cobra.Command {
	var (
		mf             migrationFlags
		cf             copyFlags
		allowDowngrade bool
	)
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Refuse a rollback (exit 5) when the database is newer than this release, or downgrade it if allowed",
		Long: `guard is what the chart's pre-rollback hook runs, with the rollback target's image. Helm runs
the target revision's pre-rollback hooks before touching any resource, so a refusal here stops the
rollback while the current release keeps serving. With --allow-downgrade it instead reverts the
migrations newer than this release, newest first, with the down SQL stored when each was applied;
it refuses (changing nothing) when one of them is irreversible or has no stored down.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, ctx, cancel, err := mf.runner(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer cancel()
			copying, err := cf.enabled()
			if err != nil {
				return err
			}
			if copying {
				// Switching back to the rollback target's database, or copying afresh.
				return cf.activate(ctx, a, &mf, &stopFlags{})
			}
			return r.Guard(ctx, allowDowngrade)
		},
	}
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "revert a newer schema with its stored down migrations instead of refusing")
	mf.register(cmd)
	cf.register(cmd)
	return cmd
}

func (a *app) checkCommand() *cobra.Command {
	var (
		wait            time.Duration
		strict          bool
		lineage         string
		acceptWriteLoss bool
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Exit 0 only if the database is at this release's head version and clean (the app gate)",
		Long: `check compares the database's version with the newest migration this binary knows. It exits 0
when they are equal and the version is clean; 8 when the schema is behind (or a migration is in
progress), 5 when the database is newer than this release, 6 when it is dirty. At head, applied
migrations whose files changed (drift, which update refuses) are a warning, or exit 4 with
--strict. With --wait it polls until the schema is current or the time is up — use it as an
init container so app pods start only on a current schema. A newer database (5) and drift (4,
with --strict) end the wait at once: waiting cannot change either.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := nonNegative("wait", wait); err != nil {
				return err
			}
			r, err := a.runner(pgdriver.Options{}, 0)
			if err != nil {
				return err
			}
			if wait > 0 {
				err = r.CheckWait(cmd.Context(), wait)
			} else {
				err = r.Check(cmd.Context())
			}
			if errors.Is(err, runner.ErrDrift) && !strict {
				// The schema is this release's: the app may run. But update will refuse this
				// database, and the gate must not hide it behind "schema is current".
				a.log.Warn(err.Error()+" (a warning: exit 4 with --strict)", "drift", true)
				err = nil
				if lineage == "" {
					return nil
				}
			}
			if err != nil {
				return err
			}
			if lineage != "" {
				if err := a.checkLineage(cmd.Context(), lineage, acceptWriteLoss); err != nil {
					return err
				}
			}
			cat, err := r.Catalog() // read by the check
			if err == nil {
				a.log.Info("schema is current", "version", cat.Head().Version)
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "poll until the schema is current or this much time has passed (0: answer at once)")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail (exit 4) when applied migrations no longer match their files (drift) instead of warning")
	cmd.Flags().StringVar(&lineage, "copy-lineage", "", "copy strategy: the lineage database; also refuse (exit 11) when this database is an older one and the newer one took writes since it started serving")
	acceptWriteLossFlag(cmd, &acceptWriteLoss)
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	var output string
	var waitForDB time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the current and head versions, pending migrations, applied history and drift",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("-o %q: use table or json", output)
			}
			r, err := a.runner(pgdriver.Options{}, waitForDB)
			if err != nil {
				return err
			}
			st, err := r.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return st.WriteTable(a.stdout)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	waitForDBFlag(cmd.Flags(), &waitForDB)
	return cmd
}

func (a *app) planCommand() *cobra.Command {
	var d pgdriver.Options
	var waitForDB time.Duration
	var commit string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the SQL that update would run now, without changing anything",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			each, err := commitEach(commit)
			if err != nil {
				return err
			}
			d.CommitEach = each
			r, err := a.runner(d, waitForDB)
			if err != nil {
				return err
			}
			return r.Plan(cmd.Context(), a.stdout)
		},
	}
	cmd.Flags().DurationVar(&d.LockTimeout, "lock-timeout", pgdriver.DefaultLockTimeout, "lock_timeout to show (as update would use it)")
	cmd.Flags().DurationVar(&d.StatementTimeout, "statement-timeout", 0, "statement_timeout to show")
	commitFlag(cmd, &commit)
	waitForDBFlag(cmd.Flags(), &waitForDB)
	return cmd
}

func (a *app) forceCommand() *cobra.Command {
	var waitForDB time.Duration
	cmd := &cobra.Command{
		Use:   "force VERSION",
		Short: "Mark the database clean at VERSION without running SQL (recovery after a dirty migration)",
		Long: `force rewrites the version row to VERSION, clean, and aligns the history table, without running
any migration SQL. Use it only after fixing a partially applied no-transaction migration by hand:
VERSION is that migration's version if you finished its statements, or the previous version if
you undid them. -1 means no migration is applied.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.Atoi(args[0])
			if err != nil || v < -1 {
				return usagef("VERSION %q: must be a migration version or -1", args[0])
			}
			r, err := a.runner(pgdriver.Options{}, waitForDB)
			if err != nil {
				return err
			}
			return r.Force(cmd.Context(), v)
		},
	}
	waitForDBFlag(cmd.Flags(), &waitForDB)
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the head migration of --migrations (if given) and the Go version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			head := "none (no --migrations; the binary carries none)"
			if a.migrationsDir != "" {
				head = "invalid"
				if cat, err := a.catalog(); err == nil {
					head = fmt.Sprintf("%d (%s)", cat.Head().Version, cat.Head().Name)
				}
			}
			fmt.Fprintf(a.stdout, "schemahook %s\nmigrations head: %s\ngo: %s %s/%s\n", version.Version, head, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// noArgs and exactArgs are cobra's validators with their errors marked as usage errors.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
