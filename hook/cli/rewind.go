package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
)

// The development commands that go back: down, goto and redo (see runner.Down).

const rewindLong = `

Each migration is reverted with its down file, or, when the file is gone from the directory,
with the down SQL stored in the history when it was applied; each in its own transaction,
under the migration lock, with the lock timeout and retries of update. Every step is checked
first: a migration marked irreversible, or gone with no stored down SQL, refuses the command
(exit 2) and nothing changes.

These commands are for development. They run only at a terminal or with --yes, so a hook Job
or a script never goes down by accident; a release goes back with update --allow-downgrade
or guard --allow-downgrade.`

func (a *app) downCommand() *cobra.Command {
	var (
		mf       migrationFlags
		yes, all bool
	)
	cmd := &cobra.Command{
		Use:   "down [N]",
		Short: "Revert the newest N applied migrations (default 1), for development",
		Long:  "down reverts the newest N applied migrations, newest first (default 1; --all: every one)." + rewindLong,
		Example: `  # Revert the last migration
  schemahook down --migrations migrations
  # Revert the last three from a script
  schemahook down 3 --migrations migrations --yes`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 1
			if len(args) == 1 {
				if all {
					return usagef("N and --all: give one")
				}
				v, err := strconv.Atoi(args[0])
				if err != nil || v < 1 {
					return usagef("N %q: must be a positive number of migrations", args[0])
				}
				n = v
			}
			if all {
				n = runner.AllMigrations
			}
			if err := confirm(cmd, yes); err != nil {
				return err
			}
			r, ctx, cancel, err := mf.runner(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer cancel()
			_, err = r.Down(ctx, n)
			return err
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "revert every applied migration")
	rewindFlags(cmd, &mf, &yes)
	return cmd
}

func (a *app) gotoCommand() *cobra.Command {
	var (
		mf  migrationFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "goto VERSION",
		Short: "Migrate up or down to VERSION, for development",
		Long: `goto brings the database to VERSION: above the current version it applies the migrations up
to VERSION as update does; below, it reverts the applied migrations above VERSION, newest
first. -1 reverts every migration.` + rewindLong,
		Example: `  # Go back to version 3
  schemahook goto 3 --migrations migrations
  # Then forward to version 5 only
  schemahook goto 5 --migrations migrations`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.Atoi(args[0])
			if err != nil || v < pgdriver.NilVersion {
				return usagef("VERSION %q: must be a migration version or -1", args[0])
			}
			if err := confirm(cmd, yes); err != nil {
				return err
			}
			r, ctx, cancel, err := mf.runner(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer cancel()
			_, err = r.Goto(ctx, v)
			return err
		},
	}
	rewindFlags(cmd, &mf, &yes)
	return cmd
}

func (a *app) redoCommand() *cobra.Command {
	var (
		mf  migrationFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "redo",
		Short: "Revert the newest applied migration and apply it again, for development",
		Long: `redo reverts the newest applied migration and applies it again from its file, under one
migration lock: run it after editing the migration you are writing. The file must be in the
directory, and the migrations below it must match their files, before anything is reverted.` + rewindLong,
		Example: `  # Apply the edited newest migration again
  schemahook redo --migrations migrations
  # From a script or a make target
  schemahook redo --migrations migrations --yes`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := confirm(cmd, yes); err != nil {
				return err
			}
			r, ctx, cancel, err := mf.runner(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer cancel()
			_, err = r.Redo(ctx)
			return err
		},
	}
	rewindFlags(cmd, &mf, &yes)
	return cmd
}

func rewindFlags(cmd *cobra.Command, mf *migrationFlags, yes *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "run without a terminal (scripts); without it the command refuses unless stdin is a terminal")
	mf.register(cmd)
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MaximumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
