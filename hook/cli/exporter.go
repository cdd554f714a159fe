package cli

import (
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/exporter"
	"github.com/schemahook/schemahook/hook/pgdriver"
)

// exporterCommand serves the schema state as Prometheus metrics until SIGTERM.
func (a *app) exporterCommand() *cobra.Command {
	var (
		listen  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exporter",
		Short: "Serve the schema state as Prometheus metrics on /metrics until SIGTERM",
		Long: `exporter serves /metrics: the database's schema version, the head of the given migrations,
pending migrations, dirty state, drift, migration durations and when the last one was applied.
Every scrape reads the database once (a read-only role suffices) within --scrape-timeout; when
it cannot, schemahook_up is 0 and no schema series are reported. /healthz answers without the
database.`,
		Example: `  # Serve /metrics on :9300 for the example schema (then: curl -s localhost:9300/metrics)
  schemahook exporter --migrations ./migrations --listen :9300
  # As the chart runs it: migrations and a read-only role from the environment
  SCHEMAHOOK_MIGRATIONS=/migrations PGHOST=db PGUSER=app_ro schemahook exporter`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usagef("--scrape-timeout %s: must be positive", timeout)
			}
			r, err := a.runner(pgdriver.Options{}, 0)
			if err != nil {
				return err
			}
			cat, err := r.Catalog() // broken migrations stop the exporter before it listens
			if err != nil {
				return err
			}
			c := exporter.New(r, exporter.WithTimeout(timeout), exporter.WithLogger(a.log))
			srv := &http.Server{Addr: listen, Handler: exporter.Handler(c), ReadHeaderTimeout: 5 * time.Second}
			return a.listenUntilDone(cmd.Context(), srv, "exporting metrics", "listen", listen, "head", cat.Head().Version, "scrape_timeout", timeout.String())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", ":9300", "listen address of /metrics and /healthz")
	cmd.Flags().DurationVar(&timeout, "scrape-timeout", exporter.DefaultTimeout, "how long a scrape may take to connect and read the database")
	return cmd
}
