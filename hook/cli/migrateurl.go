package cli

import (
	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/dbconn"
)

// translateMigrateURL reads a golang-migrate database URL (pgx5://, x-migrations-table, …) in
// --database-url or DATABASE_URL, so a team moving from golang-migrate keeps its settings: the
// URL becomes a plain connection string and its x- parameters set the flags they stand for,
// unless the flag says otherwise (then it is a usage error naming both). It returns the log
// lines to write once the logger exists: what was translated, and what was ignored.
func (a *app) translateMigrateURL(cmd *cobra.Command) (notes, warnings []string, err error) {
	t, err := dbconn.TranslateMigrateURL(a.databaseURL)
	if err != nil {
		return nil, nil, err
	}
	for name, v := range t.Flags {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			continue // e.g. x-statement-timeout for a command that runs no migration
		}
		if cur := f.Value.String(); cur != f.DefValue && cur != v {
			return nil, nil, usagef("the database URL's golang-migrate parameter sets --%s %s, but --%s is %s: keep one of them", name, v, name, cur)
		}
		if err := f.Value.Set(v); err != nil {
			return nil, nil, usagef("the database URL's golang-migrate parameter for --%s: %v", name, err)
		}
	}
	a.databaseURL = t.ConnString
	return t.Notes, t.Warnings, nil
}
