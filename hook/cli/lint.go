package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/lint"
	"github.com/schemahook/schemahook/hook/source"
)

// ExitLintFindings: lint reported findings.
const ExitLintFindings = 10

func (a *app) lintCommand() *cobra.Command {
	var (
		output string
		rules  bool
	)
	cmd := &cobra.Command{
		Use:   "lint [--migrations DIR]",
		Short: "Check migration files for SQL errors, changes that break the serving release, and lock hazards",
		Long: `lint parses every migration file in --migrations DIR (a directory given as the argument, as
before, is the same) with PostgreSQL's own parser and reports, as file:line:col with a fix:

  - SQL that does not parse, bad file names, an up file without a down file;
  - in up files, changes that break the release still serving during pre-upgrade: DROP or RENAME
    of a table or column, a column type change, ADD COLUMN ... NOT NULL without a DEFAULT,
    SET NOT NULL;
  - lock hazards on tables that existed before the migration: CREATE INDEX without CONCURRENTLY,
    a FOREIGN KEY or CHECK constraint added without NOT VALID (or validated in the same
    transaction), CONCURRENTLY in a file that runs in a transaction.

Silence a rule for one statement with a comment line right before it that says why:
  -- schemahook:lint-ignore drop-column no release reads accounts.legacy_id since v2.3

Exits 10 when there are findings. --rules lists the rules.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MaximumNArgs(1)(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usagef("-o %q: use text or json", output)
			}
			if rules {
				return a.writeRules(output)
			}
			dir := a.migrationsDir
			if len(args) == 1 {
				// The argument is an alias of --migrations; both at once must agree.
				if cmd.Flags().Changed("migrations") && filepath.Clean(args[0]) != filepath.Clean(dir) {
					return usagef("DIR %q and --migrations %q: give the directory once (--migrations)", args[0], dir)
				}
				dir = args[0]
			}
			if dir == "" {
				return errNoMigrations
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("%w: %q is not a readable directory", source.ErrInvalid, dir)
			}
			rep, err := lint.New(lint.WithLabel(dir)).Dir(os.DirFS(dir), ".")
			if err != nil {
				return err
			}
			var werr error
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				werr = enc.Encode(rep)
			} else {
				werr = rep.WriteText(a.stdout)
			}
			return errors.Join(rep.Err(), werr)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&rules, "rules", false, "list the rules and exit")
	return cmd
}

func (a *app) writeRules(output string) error {
	if output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(lint.Rules)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tCATEGORY\tIGNORABLE\tWHAT IT FLAGS")
	for _, r := range lint.Rules {
		ign := "no"
		if r.Silence {
			ign = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Category, ign, r.Summary)
	}
	return tw.Flush()
}
