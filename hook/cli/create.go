package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/source"
)

// nameRE compiles on first use: only `create` needs it, and every run pays for initialization.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`) })

// defaultTimeFormat is golang-migrate's `migrate create` default: versions such as
// 20260102150405, which sort in time order and rarely collide between branches.
const defaultTimeFormat = "20060102150405"

// upTemplate and downTemplate start a new migration. The directives are shown behind a second
// "-- " so that they stay comments: a directive is a comment line that starts with
// "-- schemahook:" (source.ParseDirectives).
const upTemplate = `-- %s
-- Runs in one transaction, committed together with its version row: a failure changes nothing.
-- Directives are comment lines of their own; copy one without the leading "-- " to use it:
--   -- schemahook:no-transaction
--        run the file statement by statement outside a transaction (CREATE INDEX CONCURRENTLY
--        needs it); only such a file can leave the version dirty if it fails midway.
--   -- schemahook:irreversible
--        this migration cannot be undone: mark it so and delete its .down.sql file.
--   -- schemahook:lint-ignore RULE REASON
--        on the line before a statement: silence one lint rule for it, saying why
--        (schemahook lint --rules lists the rules).

`

const downTemplate = `-- %s
-- Undo exactly what the up file does: schemahook verify checks it, schemahook redo runs it.
-- It may be marked no-transaction too (e.g. for DROP INDEX CONCURRENTLY):
--   -- schemahook:no-transaction

`

func (a *app) createCommand() *cobra.Command {
	var (
		seq, timestamp bool
		timeFormat, tz string
		digits         int
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Write the next VERSION_NAME.up.sql / .down.sql pair into the migrations directory",
		Long: `create writes an up and a down file for the next migration into --migrations (default
./migrations), making the directory when it does not exist. Their comments name the directives
a migration can carry (no-transaction, irreversible, lint-ignore).

Versions are sequential by default (000001, 000002, ...: --digits wide). With --timestamp they
are the time of creation, as golang-migrate's "migrate create" makes them (--time-format, a Go
time layout or unix / unixNano; --tz): branches that add migrations at once then rarely pick
the same version. A version must be above every existing one; create refuses otherwise.`,
		Example: `  # Sequential versions: migrations/000001_create_users.up.sql and .down.sql
  schemahook create create_users --migrations migrations
  # Timestamp versions, as golang-migrate makes them (20260102150405_add_index...)
  schemahook create add_users_email_index --migrations migrations --timestamp`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(args[0])))
			if !nameRE().MatchString(name) {
				return usagef("NAME %q: use letters, digits and underscores, e.g. add_users_email_index", args[0])
			}
			f := cmd.Flags()
			if f.Changed("time-format") || f.Changed("tz") {
				timestamp = true
			}
			if timestamp && f.Changed("seq") && seq {
				return usagef("--seq and --timestamp (or --time-format, --tz): choose one kind of version")
			}
			if digits < 1 {
				return usagef("--digits %d: must be positive", digits)
			}
			dir := a.migrationsDir
			if dir == "" {
				dir = "migrations"
			}
			head, err := headVersion(dir)
			if err != nil {
				return err
			}
			var version string
			if timestamp {
				loc, err := time.LoadLocation(tz)
				if err != nil {
					return usagef("--tz %q: %v", tz, err)
				}
				if version, err = timeVersion(time.Now().In(loc), timeFormat); err != nil {
					return err
				}
				if v, _ := strconv.ParseUint(version, 10, 63); head != nil && v <= *head {
					return usagef("version %s is not above the newest migration, %d: a new migration must sort after every existing one — "+
						"use sequential versions (drop --timestamp) or a --time-format that gives larger numbers", version, *head)
				}
			} else {
				next := uint64(1)
				if head != nil {
					next = *head + 1
				}
				version = fmt.Sprintf("%0*d", digits, next)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("making the migrations directory %s: %w", dir, err)
			}
			base := version + "_" + name
			for _, file := range []struct{ suffix, template string }{{".up.sql", upTemplate}, {".down.sql", downTemplate}} {
				p := filepath.Join(dir, base+file.suffix)
				if err := writeNew(p, fmt.Sprintf(file.template, base+file.suffix)); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, p)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&seq, "seq", true, "sequential versions: the newest version + 1")
	f.BoolVar(&timestamp, "timestamp", false, "timestamp versions, as golang-migrate's migrate create makes them")
	f.StringVar(&timeFormat, "time-format", defaultTimeFormat, "with --timestamp: a Go time layout, or unix or unixNano")
	f.StringVar(&tz, "tz", "UTC", "with --timestamp: the time zone of the version")
	f.IntVar(&digits, "digits", 6, "width of sequential versions, zero-padded")
	return cmd
}

// headVersion returns the newest version in dir, nil when it has no migrations or does not
// exist yet, or the error of a directory that is already broken: create refuses to add to it.
func headVersion(dir string) (*uint64, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, usagef("--migrations %q: %v", dir, err)
	case !fi.IsDir():
		return nil, usagef("--migrations %q is not a directory", dir)
	}
	cat, err := source.Load(os.DirFS(dir), ".")
	switch {
	case errors.Is(err, source.ErrEmpty):
		return nil, nil
	case err != nil:
		return nil, err
	}
	v := uint64(cat.Head().Version)
	return &v, nil
}

// timeVersion renders a timestamp version: a Go layout that must give only digits, or the
// seconds (unix) or nanoseconds (unixNano) since 1970.
func timeVersion(t time.Time, layout string) (string, error) {
	var v string
	switch layout {
	case "unix":
		v = strconv.FormatInt(t.Unix(), 10)
	case "unixNano":
		v = strconv.FormatInt(t.UnixNano(), 10)
	default:
		v = t.Format(layout)
	}
	if _, err := strconv.ParseUint(v, 10, 63); err != nil || strings.Trim(v, "0123456789") != "" {
		return "", usagef("--time-format %q gives the version %q: a version must be digits only (e.g. %s)", layout, v, defaultTimeFormat)
	}
	return v, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(p, body string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	_, werr := f.WriteString(body)
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("writing %s: %w", p, werr)
	}
	return nil
}
