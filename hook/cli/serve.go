package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
)

// serveCommand is a small stand-in application: it is what the example chart deploys as its
// "app", and it shows the contract a real app keeps — ready only while the schema is current.
func (a *app) serveCommand() *cobra.Command {
	var (
		addr     string
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve /healthz and /readyz (ready only while the schema is current) until SIGTERM",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usagef("--check-interval %s: must be positive", interval)
			}
			r, err := a.runner(pgdriver.Options{}, 0)
			if err != nil {
				return err
			}
			cat, err := r.Catalog() // broken migrations stop the server before it listens
			if err != nil {
				return err
			}
			g := &gate{r: r, interval: interval}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
			mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, req *http.Request) {
				if err := g.check(req.Context()); err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
				_, _ = w.Write([]byte("ok\n"))
			})
			mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
				st, err := r.Status(req.Context())
				if err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(st)
			})
			srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			return a.listenUntilDone(cmd.Context(), srv, "serving", "addr", addr, "head", cat.Head().Version)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", ":8080", "listen address")
	cmd.Flags().DurationVar(&interval, "check-interval", 5*time.Second, "how long a schema check result is reused")
	return cmd
}

// gate caches the last check so that frequent probes cost one query per interval.
type gate struct {
	r        *runner.Runner
	interval time.Duration

	mu   sync.Mutex
	at   time.Time
	last error
}

func (g *gate) check(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.at) < g.interval && !g.at.IsZero() {
		return g.last
	}
	g.last, g.at = g.r.Check(ctx), time.Now()
	if errors.Is(g.last, runner.ErrDrift) {
		// The schema is this release's (as `check` without --strict): ready. Update will refuse
		// the database until the drift is resolved; `status` and `check` say so.
		g.last = nil
	}
	return g.last
}
