package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// Command groups of `schemahook --help`, in the order a developer meets them, as kubectl
// groups its commands. A command without a group is listed under "Additional Commands".
const (
	groupDev      = "dev"
	groupChecks   = "checks"
	groupKube     = "kube"
	groupRecovery = "recovery"
)

func addGroups(root *cobra.Command) {
	root.AddGroup(
		&cobra.Group{ID: groupDev, Title: "Everyday development:"},
		&cobra.Group{ID: groupChecks, Title: "Checks for pre-commit hooks and CI:"},
		&cobra.Group{ID: groupKube, Title: "Kubernetes (Helm hooks and app pods):"},
		&cobra.Group{ID: groupRecovery, Title: "Recovery:"},
	)
}

// commandGroups says which group each command belongs to, by name, so that the commands
// themselves stay as they are.
var commandGroups = map[string]string{
	"create": groupDev, "status": groupDev, "plan": groupDev, "update": groupDev,
	"down": groupDev, "goto": groupDev, "redo": groupDev, "diagram": groupDev,
	"lint": groupChecks, "verify": groupChecks,
	"check": groupKube, "guard": groupKube, "serve": groupKube, "install-binary": groupKube, "exporter": groupKube,
	"force": groupRecovery,
}

// commandExamples are the Example lines of the commands defined before the groups were; they
// run against the example schema of the repository (migrations/) and a database from
// DATABASE_URL.
var commandExamples = map[string]string{
	"update": `  # Bring the database to the newest migration (what the hook Job runs)
  schemahook update --migrations migrations
  # The same from the environment, as the chart configures it
  SCHEMAHOOK_MIGRATIONS=/migrations DATABASE_URL=postgres://app@db/app schemahook update
  # Commit each pending migration in its own transaction instead of all or nothing
  schemahook update --migrations migrations --commit migration`,
	"guard": `  # Refuse (exit 5) when the database is newer than this release's migrations
  schemahook guard --migrations migrations
  # Revert the newer migrations with the down SQL stored when they were applied
  schemahook guard --migrations migrations --allow-downgrade`,
	"check": `  # Exit 0 when the schema is current, 8 when it is behind
  schemahook check --migrations migrations
  # Wait up to five minutes for the hook to finish (an init container)
  schemahook check --migrations migrations --wait 5m`,
	"status": `  # Show versions, pending migrations and history as a table
  schemahook status --migrations migrations
  # The same as JSON, for scripts
  schemahook status --migrations migrations -o json`,
	"plan": `  # Print the SQL update would run now, changing nothing
  schemahook plan --migrations migrations
  # With the lock timeout the hook uses
  schemahook plan --migrations migrations --lock-timeout 500ms`,
	"force": `  # Mark version 4 applied and clean after finishing its statements by hand
  schemahook force 4 --migrations migrations
  # Mark the database as having no migration applied
  schemahook force -1 --migrations migrations`,
	"serve": `  # Serve /healthz and /readyz on port 8080
  schemahook serve --migrations migrations
  # On another port, re-checking the schema at most every 10 seconds
  schemahook serve --migrations migrations --addr :9090 --check-interval 10s`,
	"version": `  # Print the binary's version
  schemahook version
  # And the newest migration of a directory
  schemahook version --migrations migrations`,
	"verify": `  # Check every down migration on a scratch database (the role needs CREATEDB)
  schemahook verify --migrations migrations
  # On a throwaway server other than the application's database
  schemahook verify --migrations migrations --server-url postgres://postgres@localhost:5432/postgres`,
	"lint": `  # Lint the migrations directory
  schemahook lint --migrations migrations
  # As JSON, for CI annotations
  schemahook lint --migrations migrations -o json
  # List the rules
  schemahook lint --rules`,
	"diagram": `  # Print a Mermaid ER diagram of the live schema
  schemahook diagram
  # Write it as a Markdown file that GitHub renders
  schemahook diagram -o markdown --file docs/schema.md`,
	"install-binary": `  # Copy the binary into a shared volume (an init container)
  schemahook install-binary /shared
  # Then run it from another image
  /shared/schemahook update --migrations /app/migrations`,
}

// decorate puts each top-level command in its group and gives it its examples, unless it has
// its own.
func decorate(root *cobra.Command) {
	addGroups(root)
	for _, c := range root.Commands() {
		if id, ok := commandGroups[c.Name()]; ok && c.GroupID == "" {
			c.GroupID = id
		}
		if ex, ok := commandExamples[c.Name()]; ok && c.Example == "" {
			c.Example = ex
		}
	}
}

// DefaultWaitForDB is --wait-for-db's default in every command that connects. One minute
// covers a database that starts alongside the command — a CI service container, docker compose,
// a pod restarting during a deploy — and still fails a wrong host well within a hook Job's
// deadline; every command logs a line at once when it starts waiting, so an interactive user
// sees why nothing happens yet (Ctrl-C stops it, --wait-for-db 0 answers at once).
const DefaultWaitForDB = time.Minute

func waitForDBFlag(f *pflag.FlagSet, p *time.Duration) {
	f.DurationVar(p, "wait-for-db", DefaultWaitForDB, "how long to wait for the database to accept connections (0: one attempt)")
}

// confirm lets a command that reverts migrations run only when a person is at a terminal or
// said --yes: a hook Job, a script or CI never goes down by accident.
func confirm(cmd *cobra.Command, yes bool) error {
	if yes || term.IsTerminal(int(os.Stdin.Fd())) {
		return nil
	}
	return usagef("%s reverts migrations and stdin is not a terminal: add --yes to run it from a script. "+
		"It is for development; a release goes back with `update --allow-downgrade` or `guard --allow-downgrade` (the chart's config.allowDowngrade)", cmd.Name())
}
