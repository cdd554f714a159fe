package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/verify"
)

// ExitVerifyMismatch: verify found a down migration that does not undo its up migration.
const ExitVerifyMismatch = 9

func (a *app) verifyCommand() *cobra.Command {
	var (
		serverURL string
		waitForDB time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check on a scratch database that every down migration undoes its up migration",
		Long: `verify creates a scratch database on the server, applies every up migration one by one, reverts
them one by one down to zero, applies them all again, and drops the scratch database. After each
step it compares the schema (tables, columns, types, defaults, nullability, constraints, indexes,
sequences, views, functions, triggers, types) with what that step must produce: after down N the
schema before up N, after the second up N the schema after the first. The first difference is
printed as a diff and the command exits 9.

The server comes from --server-url (SCHEMAHOOK_SERVER_URL), else the --database-url / DATABASE_URL /
PG* connection; its database is only used to connect and CREATE DATABASE the scratch one, so the
role needs CREATEDB. Nothing else on the server is touched. Use it in CI with a throwaway server.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := nonNegative("wait-for-db", waitForDB); err != nil {
				return err
			}
			cat, err := a.catalog()
			if err != nil {
				return err
			}
			if serverURL == "" {
				serverURL = a.databaseURL
			}
			cfg, err := dbconn.Config(serverURL)
			if err != nil {
				return err
			}
			d := pgdriver.Options{MigrationsTable: a.migrationsTable, HistoryTable: a.historyTable, AppliedBy: "schemahook verify"}
			v := verify.New(cfg, cat, verify.WithLogger(a.log), verify.WithDriverOptions(d), verify.WithWaitForDB(waitForDB))
			rep, err := v.Verify(cmd.Context())
			var mismatch *verify.MismatchError
			if errors.As(err, &mismatch) {
				// The diff is for people: stdout, one line each, not an escaped JSON log field.
				return errors.Join(err, mismatch.WriteText(a.stdout))
			}
			if errors.Is(err, pgdriver.ErrLeftDirty) {
				// The scratch database is dropped whatever happened: what the file left there is a
				// failed migration (exit 3), not a dirty database to repair (6).
				return fmt.Errorf("%w: %s (in verify's scratch database, which is dropped: nothing to repair)", pgdriver.ErrMigrationFailed, err)
			}
			if err != nil {
				return err
			}
			return rep.WriteText(a.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server-url", "", "server to create the scratch database on (default: the --database-url / DATABASE_URL / PG* connection)")
	waitForDBFlag(f, &waitForDB)
	return cmd
}
