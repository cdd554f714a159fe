// Package cli is the schemahook command line: cobra commands over the runner, configuration
// from flags and SCHEMAHOOK_* environment variables, logging, and the one place where errors
// become exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemahook/schemahook/hook/bluegreen"
	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/lint"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/source"
	"github.com/schemahook/schemahook/hook/verify"
	"github.com/schemahook/schemahook/hook/version"
)

// Exit codes. They are part of the interface (the chart, CI scripts and the README rely on
// them): never renumber.
const (
	ExitOK         = 0
	ExitError      = 1 // anything else: authentication, permissions, bugs
	ExitUsage      = 2 // bad flags, bad configuration, invalid migration files; nothing touched
	ExitFailed     = 3 // a migration failed; the database is at the previous version, clean
	ExitDrift      = 4 // an applied migration's file changed or is missing
	ExitNewer      = 5 // the database is newer than this release
	ExitDirty      = 6 // the version is dirty: a no-transaction migration stopped midway (now or before)
	ExitTimeout    = 7 // database unreachable, migration lock or table locks not available in time
	ExitNotCurrent = 8 // check: the schema is behind this release
)

// ExitCode maps an error returned by a command to its exit code. A version left dirty comes
// first: the state a human must repair, whatever caused it, and what the next run reports.
// Timeouts are next: a migration interrupted by the deadline is a timeout, not a broken file.
func ExitCode(err error) int {
	var usage usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, pgdriver.ErrLeftDirty):
		return ExitDirty
	case errors.Is(err, dbconn.ErrUnreachable), errors.Is(err, pgdriver.ErrLockTimeout), errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	case errors.As(err, &usage), errors.Is(err, source.ErrInvalid), errors.Is(err, dbconn.ErrConfig):
		return ExitUsage
	case errors.Is(err, pgdriver.ErrMigrationFailed):
		return ExitFailed
	case errors.Is(err, runner.ErrDrift):
		return ExitDrift
	case errors.Is(err, runner.ErrDatabaseNewer):
		return ExitNewer
	case errors.Is(err, runner.ErrIrreversible), errors.Is(err, runner.ErrTarget):
		return ExitUsage // down, goto, redo: refused before anything changed
	case errors.Is(err, runner.ErrDirty):
		return ExitDirty
	case errors.Is(err, runner.ErrNotCurrent):
		return ExitNotCurrent
	case errors.Is(err, bluegreen.ErrWriteLoss):
		return ExitWriteLoss
	case errors.Is(err, bluegreen.ErrCannotCopy):
		return ExitUsage // the copy strategy cannot work here; refused before anything changed
	case errors.Is(err, bluegreen.ErrNotServing):
		return ExitNotCurrent
	case errors.Is(err, verify.ErrMismatch):
		return ExitVerifyMismatch
	case errors.Is(err, lint.ErrFindings):
		return ExitLintFindings
	}
	return ExitError
}

type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		// cobra reports an unknown subcommand as a plain error; it is a usage error.
		err = usageError{err}
	}
	if err != nil {
		code := ExitCode(err)
		msg := dbconn.Redact(err.Error())
		switch {
		case code == ExitUsage && !errors.Is(err, source.ErrInvalid) && !errors.Is(err, dbconn.ErrConfig) && !errors.Is(err, runner.ErrIrreversible) && !errors.Is(err, bluegreen.ErrCannotCopy):
			fmt.Fprintf(stderr, "%s (see '%s --help')\n", finalLine(msg), strings.TrimSpace("schemahook "+commandName(root, args)))
		case a.log != nil:
			a.log.Error(msg, "exit_code", code)
			if !isTerminal(stderr) {
				fmt.Fprintln(stderr, finalLine(msg))
			}
		default:
			fmt.Fprintln(stderr, finalLine(msg))
		}
		return code
	}
	return ExitOK
}

// finalLine is the last line a failing command writes to stderr when stderr is not a terminal:
// the error as one line of plain text, after the log record (a JSON line, or the human
// handler's entry whose last line may be an attribute). Helm prints a failed hook Job's log
// (helm.sh/hook-output-log-policy) last before its own error, Helm 3 as it is and Helm 4
// inside one log record of its own, escaped; in a JSON record the error would be escaped
// twice there. A plain final line reads the same in both, in kubectl logs and in Argo CD. The
// message's lines are joined with "; " so that the line holds all of it. On a terminal the
// human handler's entry already shows the error readably, and is not repeated.
func finalLine(msg string) string {
	var b strings.Builder
	b.WriteString("Error:")
	sep := " "
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString(sep + l)
			// A line that introduces the next ("…:") runs on into it.
			sep = map[bool]string{true: " ", false: "; "}[strings.HasSuffix(l, ":")]
		}
	}
	return b.String()
}

func commandName(root *cobra.Command, args []string) string {
	if c, _, err := root.Find(args); err == nil && c != root {
		return c.Name()
	}
	return ""
}

// app holds the settings shared by every command.
type app struct {
	stdout, stderr io.Writer
	log            *slog.Logger

	databaseURL     string
	migrationsDir   string
	migrationsTable string
	historyTable    string
	logFormat       string
	logLevel        string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "schemahook",
		Short: "Initialize and upgrade a PostgreSQL schema safely from Helm hooks and gate app pods on it",
		Long: `schemahook applies versioned SQL migrations to PostgreSQL, each in one transaction with its
version row, so a failure leaves the previous version clean. It waits for locks with lock_timeout
and retries instead of stalling traffic, and it answers "is the schema current?" for app pods.

Configuration: flags, SCHEMAHOOK_<FLAG> environment variables (e.g. SCHEMAHOOK_LOCK_TIMEOUT=500ms),
DATABASE_URL, and libpq's PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE).

Exit codes: 0 ok, 1 error, 2 usage, invalid migrations or a down/goto/redo refused before any
change, 3 migration failed (database at the previous version, clean), 4 drift, 5 database newer
than this release, 6 dirty, 7 timeout, 8 schema not current (check), 9 verify mismatch, 10 lint
findings, 11 switching back to an older database would lose writes (copy strategy).`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: a.setup,
		Version:           version.Version,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.databaseURL, "database-url", "", "connection URL or keyword/value string (default: DATABASE_URL, then PG* variables)")
	pf.StringVar(&a.migrationsDir, "migrations", "", "directory of NNNNNN_name.up.sql/.down.sql files (required by every command that reads migrations: the binary carries none)")
	pf.StringVar(&a.migrationsTable, "migrations-table", "schema_migrations", "golang-migrate compatible version table")
	pf.StringVar(&a.historyTable, "history-table", "schemahook_history", "table recording each applied migration")
	pf.StringVar(&a.logFormat, "log-format", "auto", "log format: auto (text on a terminal, else JSON lines), text or json; NO_COLOR turns colour off")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(a.updateCommand(), a.guardCommand(), a.checkCommand(), a.statusCommand(), a.planCommand(),
		a.createCommand(), a.forceCommand(), a.serveCommand(), a.versionCommand(), a.verifyCommand(), a.lintCommand(), a.diagramCommand(),
		a.installBinaryCommand(), a.downCommand(), a.gotoCommand(), a.redoCommand(), a.exporterCommand())
	decorate(root)
	return root
}

// setup applies environment variables to flags the user did not set, then builds the logger.
// SCHEMAHOOK_<FLAG_NAME> works for every flag, so a chart can configure the hook through env
// only; DATABASE_URL is honoured for --database-url as most platforms provide it.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		env := "SCHEMAHOOK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		val, ok := os.LookupEnv(env)
		if !ok && f.Name == "database-url" {
			val, ok = os.LookupEnv("DATABASE_URL")
			env = "DATABASE_URL"
		}
		if !ok {
			return
		}
		if err := f.Value.Set(val); err != nil {
			errs = append(errs, usagef("environment variable %s=%q: %v", env, dbconn.Redact(val), err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	notes, warnings, err := a.translateMigrateURL(cmd)
	if err != nil {
		return err
	}
	log, err := newLogger(a.stderr, a.logFormat, a.logLevel)
	if err != nil {
		return err
	}
	a.log = log
	for _, n := range notes {
		log.Info(n)
	}
	for _, w := range append(warnings, unknownEnv(cmd.Root(), os.Environ())...) {
		log.Warn(w)
	}
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "auto":
		if isTerminal(w) {
			return slog.New(newHumanHandler(w, wantColor(w), lvl)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(newHumanHandler(w, wantColor(w), lvl)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use auto, text or json", format)
}

// errNoMigrations is the usage error of a command that needs migrations and was given none.
// The binary deliberately carries no default set: applying an example schema to a user's
// database by accident is worse than refusing.
var errNoMigrations = usageError{errors.New("no migrations: this binary carries none. " +
	"Pass the directory of your NNNNNN_name.up.sql/.down.sql files with --migrations DIR or SCHEMAHOOK_MIGRATIONS=DIR. " +
	"With the Helm chart, set migrations.image (run the hook in your application image, which holds them), " +
	"build an image FROM the schemahook image that copies them in and sets SCHEMAHOOK_MIGRATIONS, " +
	"or set migrations.configMap (see the chart's README, \"Migrations\")")}

// catalog opens the --migrations directory and logs where the migrations came from. Down
// files are read when something needs them (see source.Open): not on a no-op update or a check.
func (a *app) catalog() (*source.Catalog, error) {
	if a.migrationsDir == "" {
		return nil, errNoMigrations
	}
	fi, err := os.Stat(a.migrationsDir)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: --migrations %q is not a readable directory", source.ErrInvalid, a.migrationsDir)
	}
	cat, err := source.Open(source.Dir(a.migrationsDir), ".")
	if err == nil && a.log != nil {
		cat.OnWarning(func(w string) { a.log.Warn(w, "source", a.migrationsDir) })
		head := cat.Head()
		a.log.Info("migrations", "source", a.migrationsDir, "count", len(cat.Migrations()), "head", head.Version, "head_name", head.Name)
	}
	return cat, err
}

// runner builds a Runner from the shared settings plus per-command driver options.
func (a *app) runner(d pgdriver.Options, waitForDB time.Duration) (*runner.Runner, error) {
	return a.runnerOn(d, waitForDB, "")
}

// runnerOn is runner on another database of the same server, as the same role (the copy
// strategy's source and copies); "" keeps the configured one.
func (a *app) runnerOn(d pgdriver.Options, waitForDB time.Duration, database string) (*runner.Runner, error) {
	if a.migrationsDir == "" {
		return nil, errNoMigrations // before any connection: nothing is touched
	}
	cfg, err := dbconn.Config(a.databaseURL)
	if err != nil {
		return nil, err
	}
	if database != "" {
		cfg.Database = database
	}
	d.MigrationsTable, d.HistoryTable = a.migrationsTable, a.historyTable
	if d.AppliedBy == "" {
		host, _ := os.Hostname()
		d.AppliedBy = fmt.Sprintf("%s@%s (schemahook %s)", cfg.User, host, version.Version)
	}
	// The catalog is read while the runner connects (see runner.NewLoading).
	return runner.NewLoading(cfg, a.catalog, runner.WithLogger(a.log), runner.WithDriverOptions(d), runner.WithWaitForDB(waitForDB)), nil
}

func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return usagef("--%s %s: must not be negative", name, d)
	}
	return nil
}
