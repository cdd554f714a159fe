// Command schemahook initializes and upgrades a PostgreSQL schema from Helm hook Jobs and gates
// application pods on it. See `schemahook --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/schemahook/schemahook/hook/cli"
)

func main() {
	// SIGTERM (Kubernetes stopping the hook pod) cancels the context: the running statement is
	// cancelled and its transaction rolled back, so the database stays at a clean version.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
